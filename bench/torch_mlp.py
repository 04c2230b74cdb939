"""Side-by-side reference for bench/train-throughput.ts: the same 784-256-10 ReLU MLP, Adam, batch 64,
softmax cross-entropy, on seeded random data, in Debian's PyTorch (single thread). Prints one JSON line."""
import json, sys, time
import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.rand(steps * batch, 784)
y = torch.randint(0, 10, (steps * batch,))
net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()

def step(i):
    xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
    opt.zero_grad()
    loss = loss_fn(net(xb), yb)
    loss.backward()
    opt.step()

for i in range(20):
    step(i)
t = time.perf_counter()
for i in range(steps):
    step(i)
secs = time.perf_counter() - t
print(json.dumps({"engine": f"pytorch {torch.__version__} cpu, 1 thread", "samplesPerSecond": steps * batch / secs, "steps": steps, "batch": batch}))

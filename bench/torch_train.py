"""Side-by-side reference for bench/train-throughput.ts: the same networks (the 784-256-10 ReLU MLP, or
with "cnn" the 28x28 CNN conv 32 -> pool -> conv 64 -> pool -> dense 256 -> 10), Adam, softmax
cross-entropy, on seeded random data, in Debian's PyTorch (single thread). Prints one JSON line.
Usage: python3 bench/torch_train.py STEPS BATCH [mlp|cnn]"""
import json, sys, time
import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.rand(steps * batch, 784)
y = torch.randint(0, 10, (steps * batch,))
nn = torch.nn
if len(sys.argv) > 3 and sys.argv[3] == "cnn":
    x = x.reshape(-1, 1, 28, 28)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 10))
else:
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
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

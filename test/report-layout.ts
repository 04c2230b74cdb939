import type { Page } from "playwright-core";

/**
 * What a person would see wrong in a report's layout, measured in the browser: the page scrolling
 * sideways, a chart wider than its figure (cut off or scrolled), a chart's text outside its drawing,
 * and two texts of a chart drawn over each other (their bounding boxes overlap by more than `slack`
 * pixels both ways), and a table that scrolls sideways in its box, unless its id is in `scrollers`.
 * Hidden texts (Vega's dropped axis labels have opacity 0) do not count. Each problem is one
 * sentence naming the chart and the texts.
 */
export async function layoutProblems(page: Page, o: { slack?: number; scrollers?: string[] } = {}): Promise<string[]> {
  return page.evaluate(
    ({ slack, scrollers }) => {
      const out: string[] = [];
      for (const t of document.querySelectorAll("table")) {
        const box = t.parentElement!;
        if (
          !scrollers.includes(t.id) &&
          (box.scrollWidth > box.clientWidth + slack || t.getBoundingClientRect().right > box.getBoundingClientRect().right + slack)
        )
          out.push(
            `table ${t.id || "(no id)"}: ${Math.round(t.getBoundingClientRect().width)} px wide in ${Math.round(box.clientWidth)} px (scrolls sideways)`,
          );
      }
      const root = document.scrollingElement ?? document.documentElement;
      if (root.scrollWidth > window.innerWidth + slack)
        out.push(`the page scrolls sideways: ${root.scrollWidth} px of content in a ${window.innerWidth} px window`);
      for (const fig of document.querySelectorAll("figure[data-chart]")) {
        const name = fig.getAttribute("data-chart");
        const svg = fig.querySelector("svg");
        if (!svg) continue;
        const f = fig.getBoundingClientRect();
        const s = svg.getBoundingClientRect();
        if (s.right > f.right + slack || fig.scrollWidth > fig.clientWidth + slack)
          out.push(`${name}: the chart is ${Math.round(s.width)} px wide in a ${Math.round(f.width)} px figure (cut off or scrolled sideways)`);
        const texts: { text: string; box: DOMRect }[] = [];
        for (const t of svg.querySelectorAll("text")) {
          let shown = (t.textContent ?? "").trim() !== "";
          // (no named helpers in here: a bundler's name-keeping wrappers do not exist in the page)
          for (let e: Element | null = t; shown && e && e !== fig; e = e.parentElement) {
            const style = getComputedStyle(e);
            if (style.display === "none" || style.visibility === "hidden" || Number(style.opacity) === 0 || e.getAttribute("opacity") === "0") shown = false;
          }
          const box = t.getBoundingClientRect();
          if (shown && box.width > 0 && box.height > 0) texts.push({ text: (t.textContent ?? "").trim(), box });
        }
        for (const t of texts)
          if (t.box.left < s.left - slack || t.box.right > s.right + slack || t.box.top < s.top - slack || t.box.bottom > s.bottom + slack)
            out.push(`${name}: "${t.text}" runs outside the chart`);
        for (let i = 0; i < texts.length; i++)
          for (let j = i + 1; j < texts.length; j++) {
            const a = texts[i].box;
            const b = texts[j].box;
            const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
            const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
            if (w > slack && h > slack) out.push(`${name}: "${texts[i].text}" and "${texts[j].text}" are drawn over each other`);
          }
      }
      return out;
    },
    { slack: o.slack ?? 1, scrollers: o.scrollers ?? [] },
  );
}

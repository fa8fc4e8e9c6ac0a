// The viewer of `quorum check --html`: reads the history's JSON from the
// page and draws one section per key, one lane per process, one bar per op
// (its invoke to its completion, in history positions). Ranks are the
// checker's order of linearization; hovering an op lights up every op of
// its key linearized up to it. Zoom scales the time axis.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("history").textContent);
  const root = document.getElementById("viewer");
  const LANE_LABEL_PX = 98;
  let scale = Math.max(4, Math.min(40, 1600 / Math.max(1, data.events)));
  const bars = [];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function header() {
    const head = el("header");
    head.appendChild(el("h1", "", data.title));
    const line = el("div");
    line.appendChild(el("b", "verdict-" + data.verdict.replace(/ /g, "-"), data.verdict));
    line.appendChild(document.createTextNode(
      " \u2014 model " + data.model + ", format " + data.format + ", " + data.ops.length + " operations"));
    head.appendChild(line);
    head.appendChild(el("div", "", data.explanation));
    const controls = el("div", "controls");
    for (const [label, factor] of [["zoom in", 1.5], ["zoom out", 1 / 1.5]]) {
      const button = el("button", "", label);
      button.addEventListener("click", () => zoom(factor));
      controls.appendChild(button);
    }
    const legend = el("span", "legend");
    for (const [cls, text] of [["", "linearized (#rank)"], ["unranked", "not in the linearization"],
      ["witness", "in the witness"], ["pending", "indeterminate (info or no completion)"], ["fail", "failed"]]) {
      const item = el("span");
      item.appendChild(el("span", "swatch op " + cls));
      item.lastChild.style.position = "static";
      item.appendChild(document.createTextNode(text));
      legend.appendChild(item);
    }
    controls.appendChild(legend);
    head.appendChild(controls);
    root.appendChild(head);
  }

  function describe(op) {
    const lines = ["process " + op.process + ": " + op.f + (op.key === null ? "" : " " + op.key) + " " + op.value];
    lines.push("completion: " + op.type + (op.result === undefined ? "" : " " + op.result));
    lines.push("lines " + op.line + (op.end_line === undefined ? "" : "\u2013" + op.end_line) +
      ", events " + op.start + "\u2013" + (op.end === null ? "end" : op.end));
    lines.push(op.rank ? "linearized #" + op.rank + " of its key" : "not in the linearization shown");
    if (op.witness) lines.push("in the witness");
    return lines.join("\n");
  }

  function place(bar) {
    const end = bar.op.end === null ? data.events : bar.op.end;
    bar.node.style.left = (LANE_LABEL_PX + bar.op.start * scale) + "px";
    bar.node.style.width = Math.max(6, (end - bar.op.start + 1) * scale) + "px";
  }

  function zoom(factor) {
    scale = Math.max(0.05, Math.min(200, scale * factor));
    for (const bar of bars) place(bar);
    for (const lane of root.querySelectorAll(".lane")) lane.style.width = (LANE_LABEL_PX + (data.events + 2) * scale) + "px";
  }

  function highlight(op, on) {
    for (const bar of bars) {
      const same = bar.op.group === op.group && op.rank && bar.op.rank && bar.op.rank <= op.rank;
      bar.node.classList.toggle("before", on && !!same);
      bar.node.classList.toggle("current", on && bar.op === op);
    }
  }

  function sections(tip) {
    data.keys.forEach((key, group) => {
      const ops = data.ops.filter((op) => op.group === group);
      const section = el("section", "key");
      const total = ops.filter((op) => op.type === "ok").length;
      let title = key.name + ": " + key.outcome + " \u2014 " + ops.length + " operations";
      title += key.outcome === "linearizable"
        ? ", " + key.linearized + " linearized in the order numbered"
        : ", the longest linearizable sequence found numbers " + key.linearized + " (of " + total + " ok)";
      section.appendChild(el("h2", "", title));
      const lanes = el("div", "lanes");
      const processes = [...new Set(ops.map((op) => op.process))].sort((a, b) => a - b);
      for (const process of processes) {
        const lane = el("div", "lane");
        lane.appendChild(el("span", "lane-name", "process " + process));
        for (const op of ops.filter((o) => o.process === process)) {
          const node = el("div", "op " + op.type + (op.rank ? "" : " unranked") + (op.witness ? " witness" : ""));
          if (op.rank) node.appendChild(el("span", "rank", "#" + op.rank));
          node.appendChild(document.createTextNode(op.f + " " + op.value + (op.result === undefined ? "" : " \u2192 " + op.result)));
          node.addEventListener("mouseenter", (event) => {
            tip.textContent = describe(op);
            tip.style.display = "block";
            tip.style.left = event.clientX + 12 + "px";
            tip.style.top = event.clientY + 12 + "px";
            highlight(op, true);
          });
          node.addEventListener("mouseleave", () => { tip.style.display = "none"; highlight(op, false); });
          const bar = { op: op, node: node };
          bars.push(bar);
          place(bar);
          lane.appendChild(node);
        }
        lanes.appendChild(lane);
      }
      section.appendChild(lanes);
      root.appendChild(section);
    });
  }

  header();
  const tip = el("div");
  tip.id = "tip";
  document.body.appendChild(tip);
  sections(tip);
  zoom(1);
  window.addEventListener("wheel", (event) => {
    if (!event.ctrlKey) return;
    event.preventDefault();
    zoom(event.deltaY < 0 ? 1.25 : 0.8);
  }, { passive: false });
  document.body.dataset.rendered = String(bars.length);
})();

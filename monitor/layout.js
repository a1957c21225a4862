// dagcast monitor: the layered layout of a DAG (window.DagcastLayout). Pure functions, no DOM.
//
// level(task) = the longest path from a root via dependencies (roots are level 0), so every edge
// goes left to right. Within a column, tasks start in id order, then a few barycenter sweeps
// (down by the parents' rows, up by the children's) reduce the edge crossings a little.
'use strict';

(function () {
  // tasks: [{id, dependencies: [ids]}] → {level: Map, columns: [[ids]], row: Map, edges: [{from, to}]}
  function layout(tasks, sweeps = 4) {
    const ids = tasks.map((t) => t.id);
    const known = new Set(ids);
    const parents = new Map();
    const children = new Map(ids.map((id) => [id, []]));
    for (const t of tasks) {
      const deps = [...new Set(t.dependencies || [])].filter((d) => known.has(d) && d !== t.id);
      parents.set(t.id, deps);
      for (const d of deps) children.get(d).push(t.id);
    }
    const edges = [];
    for (const t of tasks) for (const d of parents.get(t.id)) edges.push({ from: d, to: t.id });

    // Longest path from a root, in topological order (Kahn). A cycle (the API refuses them) would
    // leave tasks unplaced: they go to level 0 rather than hang the page.
    const level = new Map();
    const indegree = new Map(ids.map((id) => [id, parents.get(id).length]));
    const queue = ids.filter((id) => indegree.get(id) === 0);
    for (const id of queue) level.set(id, 0);
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      for (const c of children.get(id)) {
        level.set(c, Math.max(level.get(c) ?? 0, level.get(id) + 1));
        indegree.set(c, indegree.get(c) - 1);
        if (indegree.get(c) === 0) queue.push(c);
      }
    }
    for (const id of ids) if (!level.has(id) || indegree.get(id) > 0) level.set(id, level.get(id) ?? 0);

    const depth = ids.length ? Math.max(...level.values()) + 1 : 0;
    const columns = Array.from({ length: depth }, () => []);
    for (const id of [...ids].sort(compareIds)) columns[level.get(id)].push(id);

    const row = new Map();
    const index = () => columns.forEach((col) => col.forEach((id, r) => row.set(id, r)));
    index();
    const reorder = (col, neighbours) => {
      const weight = new Map(col.map((id) => {
        const ns = neighbours.get(id).filter((n) => row.has(n));
        return [id, ns.length ? ns.reduce((s, n) => s + row.get(n), 0) / ns.length : row.get(id)];
      }));
      col.sort((a, b) => weight.get(a) - weight.get(b) || row.get(a) - row.get(b)); // stable on ties
      col.forEach((id, r) => row.set(id, r));
    };
    let best = columns.map((c) => [...c]);
    let fewest = crossings({ columns, edges, level });
    for (let s = 0; s < sweeps && fewest > 0; s++) {
      if (s % 2 === 0) for (let l = 1; l < depth; l++) reorder(columns[l], parents);
      else for (let l = depth - 2; l >= 0; l--) reorder(columns[l], children);
      const now = crossings({ columns, edges, level });
      if (now < fewest) {
        fewest = now;
        best = columns.map((c) => [...c]);
      }
    }
    best.forEach((col, l) => { columns[l] = col; });
    index();
    return { level, columns, row, edges, parents, children };
  }

  // Crossings between edges that join the same two adjacent columns (longer edges are not counted).
  function crossings({ columns, edges, level }) {
    const row = new Map();
    columns.forEach((col) => col.forEach((id, r) => row.set(id, r)));
    const byGap = new Map();
    for (const e of edges) {
      if (level.get(e.to) - level.get(e.from) !== 1) continue;
      const gap = level.get(e.from);
      if (!byGap.has(gap)) byGap.set(gap, []);
      byGap.get(gap).push([row.get(e.from), row.get(e.to)]);
    }
    let n = 0;
    for (const list of byGap.values()) {
      for (let i = 0; i < list.length; i++) {
        for (let j = i + 1; j < list.length; j++) {
          const [a1, b1] = list[i];
          const [a2, b2] = list[j];
          if ((a1 - a2) * (b1 - b2) < 0) n += 1;
        }
      }
    }
    return n;
  }

  function compareIds(a, b) {
    return typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b));
  }

  window.DagcastLayout = { layout, crossings };
})();

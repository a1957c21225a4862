// The few React hooks useExecution uses, for one component rendered by the test (React itself is
// only a peer dependency, not installed here). A state change renders again; an effect runs after
// a render whose deps changed, its cleanup first; unmount() runs the cleanups.
let current = null;

export function render(component, props) {
  const root = { component, props, hooks: [], effects: [], output: undefined, renders: 0 };
  root.rerender = (next = root.props) => {
    root.props = next;
    current = { root, index: 0 };
    root.output = root.component(root.props);
    root.renders += 1;
    current = null;
    const due = root.effects;
    root.effects = [];
    for (const run of due) run();
    return root.output;
  };
  root.unmount = () => {
    for (const hook of root.hooks) if (hook && hook.cleanup) hook.cleanup();
    root.unmounted = true;
  };
  root.rerender(props);
  return root;
}

function slot() {
  const { root } = current;
  const index = current.index++;
  return [root, index];
}

export function useReducer(reducer, arg, init) {
  const [root, index] = slot();
  if (!root.hooks[index]) {
    const hook = { state: init ? init(arg) : arg };
    hook.dispatch = (action) => {
      const next = reducer(hook.state, action);
      if (Object.is(next, hook.state) || root.unmounted) return;
      hook.state = next;
      if (current === null) root.rerender();
    };
    root.hooks[index] = hook;
  }
  const hook = root.hooks[index];
  return [hook.state, hook.dispatch];
}

export function useRef(initial) {
  const [root, index] = slot();
  if (!root.hooks[index]) root.hooks[index] = { current: initial };
  return root.hooks[index];
}

export function useEffect(effect, deps) {
  const [root, index] = slot();
  const hook = root.hooks[index] || (root.hooks[index] = {});
  const changed = !hook.deps || deps.some((d, i) => !Object.is(d, hook.deps[i]));
  if (!changed) return;
  hook.deps = deps;
  root.effects.push(() => {
    if (hook.cleanup) hook.cleanup();
    hook.cleanup = effect() || null;
  });
}

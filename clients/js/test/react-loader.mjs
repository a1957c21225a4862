// Resolves the bare specifier 'react' to the test's fake (registered by react.test.js).
export async function resolve(specifier, context, next) {
  if (specifier === 'react') return { url: new URL('./fake-react.js', import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}

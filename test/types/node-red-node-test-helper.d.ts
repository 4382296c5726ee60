declare module 'node-red-node-test-helper' {
  // The helper ships no typings; the tests use a small part of its API.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const helper: any;
  export = helper;
}

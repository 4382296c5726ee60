declare module 'node-red-node-test-helper' {
  // The helper ships no typings; the tests use a small part of its API.
  const helper: any;
  export = helper;
}

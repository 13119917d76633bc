/** Lua scripts are imported as text: tsup's `text` loader in the build, a small plugin under vitest. */
declare module '*.lua' {
  const source: string;
  export default source;
}

/** Import rules, checked by `npm run lint` (dependency-cruiser). Type-only imports count too. */
export default {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import circles make the load order fragile and hide layering mistakes.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      severity: 'error',
      comment: 'src/core is the pure centre: it imports nothing else of the project.',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'cache-below-engine',
      severity: 'error',
      comment: 'The token cache wraps a core TokenVerifier; it knows nothing of the engine or the adapters.',
      from: { path: '^src/cache/' },
      to: { path: '^src/', pathNot: '^src/(core|cache)/' },
    },
    {
      name: 'adapters-only-in-server',
      severity: 'error',
      comment: 'Adapters translate wire formats; only the composition root (src/runtime) builds engine parts.',
      from: { path: '^src/server/' },
      to: { path: '^src/(engine|policy|authn/entra|cache|cli)/' },
    },
    {
      name: 'client-stands-alone',
      severity: 'error',
      comment: 'The caller-side entry (entra-authz/client) ships without the server.',
      from: { path: '^src/client/' },
      to: { path: '^src/', pathNot: '^src/client/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};

// A real OpenID provider on loopback for patchday's sign-in tests: the certified npm package
// `oidc-provider` (installed by .ci/deps-oidc.sh), with its development login form, which takes
// any login and password. The login is the account: its `email` claim is the login, and its
// `groups` claim is ["patch-admins"] for logins starting with "admin", else ["patch-viewers"].
//
//   node provider.mjs --port P --client-id ID --client-secret S --redirect URI [--id-token-ttl SECONDS]
//
// Prints READY when it listens; stops when its standard input closes.
import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (
    arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs
  ), []),
);
const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: [args.redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['groups'] },
  conformIdTokenClaims: false,
  ttl: { IdToken: Number(args['id-token-ttl'] || 3600) },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: id,
      email_verified: true,
      groups: id.startsWith('admin') ? ['patch-admins'] : ['patch-viewers'],
    }),
  }),
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write('READY\n');
});
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();

// A real OpenID provider on loopback for patchday's sign-in tests: the certified npm package
// `oidc-provider` (installed by .ci/deps-oidc.sh), with its development login form, which takes
// any login and password. The login is the account: its `email` claim is the login, and its
// `groups` claim is ["patch-admins"] for logins starting with "admin", else ["patch-viewers"].
//
//   node provider.mjs --port P --client-id ID --client-secret S --redirect URI [--id-token-ttl SECONDS]
//
// Prints READY when it listens; stops when its standard input closes. Lines on its standard
// input change how it misbehaves, for the refusal tests (each answered with OK on stdout):
//   set id-token-ttl SECONDS        the life of the ID tokens it issues next
//   set id-token-audience AUD       issue ID tokens for AUD instead of the client ("" resets)
//   set token-delay-ms MS           answer the token endpoint MS after minting the tokens
import readline from 'node:readline';
import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (
    arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs
  ), []),
);
const port = Number(args.port);
const settings = {
  'id-token-ttl': Number(args['id-token-ttl'] || 3600),
  'id-token-audience': '',
  'token-delay-ms': 0,
};
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
  ttl: { IdToken: () => settings['id-token-ttl'] },
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

// `set id-token-audience`: the ID token is signed for another audience than the client.
const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issueFor(options) {
  const audience = settings['id-token-audience'];
  if (!audience || options?.use !== 'idtoken') return issue.call(this, options);
  const { client } = this;
  this.client = new Proxy(client, {
    get: (target, name) => (name === 'clientId' ? audience : Reflect.get(target, name)),
  });
  try {
    return await issue.call(this, options);
  } finally {
    this.client = client;
  }
};

// `set token-delay-ms`: the tokens are minted, then held back.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && settings['token-delay-ms'] > 0) {
    await new Promise((resolve) => { setTimeout(resolve, settings['token-delay-ms']); });
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write('READY\n');
});
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [verb, key, ...value] = line.trim().split(' ');
  if (verb === 'set' && key in settings) {
    const text = value.join(' ');
    settings[key] = typeof settings[key] === 'number' ? Number(text) : text;
    process.stdout.write('OK\n');
  } else {
    process.stdout.write(`ERROR ${line}\n`);
  }
});
lines.on('close', () => server.close(() => process.exit(0)));

// A real OIDC provider (panva/oidc-provider) for the browser and CLI tests, on 127.0.0.1 only.
// Usage: node server.mjs <port> <redirect_uri> <client_secret> <accounts JSON {"login": ["group", ...]}>
// Its own development sign-in pages are used (any password for a known login); PKCE is required.
//
// The device flow (RFC 8628) is on unless OIDC_DEVICE_FLOW=off, for `flowdeck login --oidc`. Its
// public clients get JWT access tokens for the resource API_AUDIENCE, carrying the username and
// groups that flowdeck reads, and refresh tokens with offline_access:
//   flowdeck-cli           the ordinary client (codes live 10 minutes)
//   flowdeck-cli-expiring  device codes that expire after 2 s (the expired_token answer)
//   flowdeck-cli-strict    polled sooner than 3 s after the last poll it answers slow_down, though
//                          the device authorization answer says interval 1 (as a rate limit would)
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret, accountsJson] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson);
const issuer = `http://127.0.0.1:${port}`;
const deviceFlow = process.env.OIDC_DEVICE_FLOW !== 'off';
const API_AUDIENCE = 'urn:flowdeck:api';
const CLI_CLIENTS = ['flowdeck-cli', 'flowdeck-cli-expiring', 'flowdeck-cli-strict'];
const STRICT_SECONDS = 3;

const cliClient = (clientId) => ({
  client_id: clientId,
  token_endpoint_auth_method: 'none',
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  response_types: [],
  redirect_uris: [],
});
const isCli = (client) => Boolean(client) && CLI_CLIENTS.includes(client.clientId);

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'flowdeck-ui',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }, ...(deviceFlow ? CLI_CLIENTS.map(cliClient) : [])],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'groups', 'offline_access', 'api'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  cookies: { keys: [clientSecret] },
  features: {
    deviceFlow: { enabled: deviceFlow },
    resourceIndicators: {
      enabled: true,
      // Only the CLI clients' tokens are for the API: the UI's access token goes to userinfo.
      defaultResource: async (_ctx, client, oneOf) => (isCli(client) ? API_AUDIENCE : oneOf),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (resource !== API_AUDIENCE || !isCli(client)) throw new Error(`unknown resource ${resource}`);
        return { scope: 'api', audience: API_AUDIENCE, accessTokenFormat: 'jwt', accessTokenTTL: 600 };
      },
    },
  },
  ttl: {
    DeviceCode: (_ctx, _token, client) => (client?.clientId === 'flowdeck-cli-expiring' ? 2 : 600),
  },
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !Object.hasOwn(accounts, token.accountId)) return undefined;
    const id = token.accountId;
    return { preferred_username: id, name: `Test user ${id}`, groups: accounts[id] };
  },
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: `Test user ${id}`, groups: accounts[id] };
      },
    };
  },
});

// The device flow's timing: say interval 1 (RFC 8628's default is 5 s, too slow for tests), and
// answer slow_down to flowdeck-cli-strict when polled sooner than STRICT_SECONDS.
const lastPoll = new Map();
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/device/auth' && ctx.status === 200 && ctx.body?.device_code) {
    ctx.body.interval = 1;
    lastPoll.set(ctx.body.device_code, Date.now());
    return;
  }
  const code = ctx.oidc?.params?.device_code;
  if (ctx.path !== '/token' || ctx.body?.error !== 'authorization_pending' || !code) return;
  const previous = lastPoll.get(code);
  lastPoll.set(code, Date.now());
  if (ctx.oidc.client?.clientId === 'flowdeck-cli-strict' && Date.now() - previous < STRICT_SECONDS * 1000) {
    ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly' };
  }
});

provider.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${issuer}`));

// A real OIDC provider (panva/oidc-provider) for the browser tests, on 127.0.0.1 only.
// Usage: node server.mjs <port> <redirect_uri> <client_secret> <accounts JSON {"login": ["group", ...]}>
// Its own development sign-in pages are used (any password for a known login); PKCE is required.
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret, accountsJson] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'flowdeck-ui',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  cookies: { keys: [clientSecret] },
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
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${issuer}`));

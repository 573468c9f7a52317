// A real OpenID Connect provider for the interop tests (tests/interop_oidc.rs): node's
// oidc-provider (a certified implementation, not ours), configured here, on 127.0.0.1
// only, on a port the system picks. It prints one line, `listening http://127.0.0.1:PORT/`,
// once it accepts connections, and runs until its standard input closes (so that it never
// outlives the test that started it) or it is killed.
//
// Clients (every secret is a test value):
// - pizauth-post: client_secret_post, the code flow (PKCE), refresh, the device flow and
//   client credentials; redirect URI http://127.0.0.1/ as a native application, whose
//   port may vary (RFC 8252 section 7.3).
// - pizauth-basic: the same, registered for client_secret_basic only.
// - dovecot: client_secret_basic, only to call the introspection endpoint.
//
// Access tokens live ACCESS_TTL seconds (default 6), so that refreshes come quickly;
// refresh tokens rotate on every use.

import http from 'node:http';
import Provider from 'oidc-provider';

const accessTtl = Number(process.env.ACCESS_TTL || 6);

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}/`;
  const common = {
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/'],
    response_types: ['code'],
    grant_types: [
      'authorization_code',
      'refresh_token',
      'client_credentials',
      'urn:ietf:params:oauth:grant-type:device_code',
    ],
  };
  const provider = new Provider(issuer, {
    clients: [
      {
        ...common,
        client_id: 'pizauth-post',
        client_secret: 'post-secret-0123456789',
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        ...common,
        client_id: 'pizauth-basic',
        client_secret: 'basic:secret&0123456789',
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'dovecot',
        client_secret: 'dovecot-secret-0123456789',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [],
        response_types: [],
        grant_types: [],
      },
    ],
    scopes: ['openid', 'offline_access', 'email', 'mail', 'reports.read'],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    // An access token for the dovecot client's introspection is no one's business but
    // ours: every client may introspect every token here.
    ttl: {
      AccessToken: accessTtl,
      ClientCredentials: accessTtl,
      DeviceCode: 300,
      Interaction: 300,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    rotateRefreshToken: true,
    // Test cookies; nothing here is kept past the test.
    cookies: { keys: ['interop-test-cookie-key'] },
  });
  // How each client authenticated, per endpoint, for the tests to check
  // (GET /test/client-auth), and a policy some real providers have: pizauth-basic may
  // use client_secret_basic only. oidc-provider itself takes either method from any
  // client registered for one of them, so the answer is replaced after the fact.
  const seen = [];
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/test/client-auth') {
      ctx.body = seen;
      return;
    }
    await next();
    const client = ctx.oidc?.client?.clientId;
    if (ctx.method === 'POST' && client) {
      const method = ctx.headers.authorization?.startsWith('Basic ') ? 'basic' : 'post';
      seen.push({ path: ctx.path, client, method });
      if (client === 'pizauth-basic' && method !== 'basic') {
        ctx.status = 401;
        ctx.body = {
          error: 'invalid_client',
          error_description: 'this client authenticates with client_secret_basic only',
        };
      }
    }
  });
  // The provider warns about its development defaults on stderr; the test prints them
  // only if it fails.
  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));

// Log in the way Element Web does it, with matrix-js-sdk: POST /login at the
// server the user typed, then, if the response carries well_known, validate it
// with AutoDiscovery.fromDiscoveryConfig and use its homeserver from then on.
//
// Usage: node element_login.mjs <server URL> '<login request as JSON>'
// Its last line of output is one JSON object: the login's user, the discovery
// state, the homeserver the client ends on and whoami there; or the error.
// (matrix-js-sdk logs its requests to stdout before that.)
import { AutoDiscovery, AutoDiscoveryAction, createClient } from "matrix-js-sdk";
import { webcrypto } from "node:crypto";

// Node 18 (Debian 12's nodejs) has Web Crypto only under node:crypto.
globalThis.crypto ??= webcrypto;

const [server, request] = process.argv.slice(2);

async function main() {
    const portal = createClient({ baseUrl: server });
    let login;
    try {
        login = await portal.loginRequest(JSON.parse(request));
    } catch (e) {
        return { error: { httpStatus: e.httpStatus, errcode: e.errcode, message: e.data?.error ?? e.message } };
    }
    let homeserver = server;
    let discovery = null;
    if (login.well_known !== undefined) {
        const config = await AutoDiscovery.fromDiscoveryConfig(login.well_known);
        discovery = config["m.homeserver"].state;
        if (discovery === AutoDiscoveryAction.SUCCESS) {
            homeserver = config["m.homeserver"].base_url;
        }
    }
    const client = createClient({
        baseUrl: homeserver,
        accessToken: login.access_token,
        userId: login.user_id,
    });
    const whoami = await client.whoami();
    return { user_id: login.user_id, discovery, homeserver, whoami: whoami.user_id };
}

process.stdout.write(JSON.stringify(await main()) + "\n");

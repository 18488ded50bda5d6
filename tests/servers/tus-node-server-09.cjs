'use strict';
// tus-node-server 0.9.0 (npm "tus-node-server", the Node tus server most deployments ran
// before @tus/server) with its FileStore, for integration tests. CommonJS, as the package is.
// Usage: node tus-node-server-09.cjs [PORT] [DIR]
//   env: PORT (default 1083), TUS_DIR (default ./data/node09), HOST (default 127.0.0.1),
//        NODE_PATH (the node_modules holding tus-node-server), XDG_CONFIG_HOME (where the
//        FileStore's configstore keeps its upload records: configstore/tus-node-server-0.9.0.json).
// Prints one line "READY <url>" on stdout once listening (PORT=0 picks a free port).
//
// What this server is like (0.9.0, as released): OPTIONS answers 204 with Tus-Resumable and
// Tus-Extension (creation, creation-with-upload, creation-defer-length, termination) but no
// Tus-Version; Location is protocol-relative (//HOST/files/ID, HOST from the request); checksums
// are ignored; Upload-Concat gets 501; GET is not served (tests read the data directory).
const http = require('node:http');
const path = require('node:path');
const tus = require('tus-node-server');

const port = Number(process.argv[2] ?? process.env.PORT ?? 1083);
const directory = path.resolve(process.argv[3] ?? process.env.TUS_DIR ?? './data/node09');
const host = process.env.HOST ?? '127.0.0.1';

const server = new tus.Server({ path: '/files' });
server.datastore = new tus.FileStore({ directory });

// tus.Server#listen would make its own http.Server with Node's default 300 s request timeout,
// which cuts one large PATCH on a slow machine; make the http.Server here without it.
const httpServer = http.createServer((req, res) => server.handle(req, res));
httpServer.requestTimeout = 0;
httpServer.listen(port, host, () => {
  console.log(`READY http://${host}:${httpServer.address().port}/files/ dir=${directory}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    httpServer.close();
    process.exit(0);
  });
}

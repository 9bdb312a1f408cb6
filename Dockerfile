# syntax=docker/dockerfile:1
# Crypto Server — production image. Build: docker build -t crypto-server .
# The build stage compiles (native modules need python3/make/g++, TypeScript needs dev
# dependencies); the runtime stage gets only the compiled server, production dependencies and
# package.json — no tests, no TypeScript sources, no dev dependencies, no compilers, no npm.
# test/deploy/dockerfile.test.ts checks what the runtime stage contains.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json ./
# Every source folder the server imports (the test checks this against server/cli/main.ts's imports).
COPY server server
COPY scim scim
COPY kms-adapters kms-adapters
COPY entities entities
COPY backend backend
COPY key-connector key-connector
COPY admin admin
# test/ is not in the build context (.dockerignore), so dist/ holds no tests.
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production CS_HOST=0.0.0.0 CS_PORT=8080 CS_DATA_DIR=/var/lib/crypto-server
WORKDIR /app
# No package manager at run time; a data dir owned by the unprivileged user (a volume: the root
# file system can be read-only).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/crypto-server --shell /usr/sbin/nologin crypto-server \
 && mkdir -p /var/lib/crypto-server && chown 10001:10001 /var/lib/crypto-server && chmod 700 /var/lib/crypto-server
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
USER 10001:10001
VOLUME ["/var/lib/crypto-server"]
EXPOSE 8080
# Liveness (/healthz), over https when in-process TLS is on (the certificate is not checked: it is our own).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD ["node", "-e", "const tls=!!process.env.CS_TLS_CERT_FILE;require(tls?'node:https':'node:http').get({host:'127.0.0.1',port:process.env.CS_PORT,path:'/healthz',rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (graceful shutdown, docs/operations.md).
ENTRYPOINT ["node", "dist/server/cli/main.js"]
CMD ["serve"]

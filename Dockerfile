# syntax=docker/dockerfile:1
# Crypto Server — production image. Build: docker build -t crypto-server .
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json ./
COPY server server
COPY scim scim
COPY kms-adapters kms-adapters
COPY entities entities
COPY test test
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production CS_HOST=0.0.0.0 CS_PORT=8080 CS_DATA_DIR=/var/lib/crypto-server
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY docs docs
RUN useradd --system --uid 10001 --home /var/lib/crypto-server crypto-server \
 && mkdir -p /var/lib/crypto-server && chown crypto-server /var/lib/crypto-server && chmod 700 /var/lib/crypto-server
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:'+process.env.CS_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/server/cli/main.js"]
CMD ["serve"]

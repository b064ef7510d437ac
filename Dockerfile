# syntax=docker/dockerfile:1
#
# entra-authz image, multi-stage. Targets:
#   runtime (default, last stage)  the server / emulator: node dist/cli.js ...  (non-root, uid 10001)
#   demo                           runtime + the demo upstream and client (docker-compose.yml)
#   certs                          openssl + scripts/gen-certs.sh, run once by docker-compose.yml
#
#   docker build -t entra-authz .
#   docker run --rm -v $PWD/config.yaml:/etc/entra-authz/config.yaml:ro -p 9001:9001 -p 9090:9090 entra-authz
#
# Every base image is pinned to a release (Node 24 LTS). Digests are not pinned here: append
# @sha256:... after checking the image you trust (docs/deployment.md, "The image").
ARG NODE_IMAGE=node:24.21.0-alpine

# --- build: compile TypeScript (dev dependencies needed) --------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only -------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
# Optional packages the lean install leaves out, e.g. @azure/identity for Graph group lookups:
#   docker build --build-arg OPTIONAL_PACKAGES=@azure/identity@4 .
ARG OPTIONAL_PACKAGES=""
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && if [ -n "${OPTIONAL_PACKAGES}" ]; then npm install --omit=dev --no-save --no-audit --no-fund ${OPTIONAL_PACKAGES}; fi \
 && npm cache clean --force

# --- server: what runs in production ----------------------------------------------------------
FROM ${NODE_IMAGE} AS server
ENV NODE_ENV=production
# V8 sizes its heap from the machine's memory, not the container's, and lets garbage pile up below
# that: 192 MB holds 100,000 verified tokens (docs/deployment.md, "Heap limit"). Set NODE_OPTIONS to change it.
ENV NODE_OPTIONS=--max-old-space-size=192
WORKDIR /app
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and key files can be owned by it.
RUN addgroup -S -g 10001 entra && adduser -S -D -H -u 10001 -G entra -s /sbin/nologin entra
# Everything is owned by root and read-only to the process: it writes nothing but to stdout.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
# 9001: ext_authz gRPC (Envoy)   9090: admin HTTP (/healthz /readyz /metrics)
EXPOSE 9001 9090
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/entra-authz/config.yaml"]

# --- demo: the compose demo's upstream service and client (run with tsx) -----------------------
FROM server AS demo
# tsx is a development tool: the demo takes the build stage's full install, the server never does.
COPY --from=build /app/node_modules ./node_modules
COPY src/client ./src/client
COPY src/dev/demo.ts ./src/dev/demo.ts
COPY demo ./demo
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["demo/client.ts"]

# --- certs: one-shot certificate generator ----------------------------------------------------
FROM alpine:3.22 AS certs
RUN apk add --no-cache openssl
COPY scripts/gen-certs.sh /usr/local/bin/gen-certs.sh
ENTRYPOINT ["/bin/sh", "/usr/local/bin/gen-certs.sh"]
CMD ["/certs"]

# --- runtime: the default target --------------------------------------------------------------
FROM server AS runtime

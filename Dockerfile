# The ClawLoops control plane image.
#
#   docker build -t clawloops/control-plane .
#   docker run -d --init -v clawloops-data:/data -p 8080:8080 clawloops/control-plane
#
# `--init` (compose: `init: true`): the image has no init of its own. The process handles
# SIGTERM/SIGINT itself (graceful shutdown) and spawns no children, so none is strictly needed,
# but an init reaps anything unexpected and is what docker-compose.yml uses.
#
# Managing runtimes needs the Docker socket. The process runs as the unprivileged user `node`
# (uid 1000), so give it the socket's group instead of running it as root:
#   docker run ... -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e CLAWLOOPS_CONTROL_PLANE_CONTAINER=self clawloops/control-plane
# (`self`: the control plane joins every runtime network as this container.)
# Least privilege inside the container (no root, no capabilities needed, read-only root file
# system works); note that access to the Docker socket is root-equivalent on the host anyway.
#
# Classic builder here (DOCKER_BUILDKIT=0 on machines without buildx); nothing below needs
# BuildKit. Machines that cannot pull build with a local stand-in for the base:
#   scripts/images/build-node-base-image.sh
#   docker build --build-arg NODE_IMAGE=clawloops/node:20-bookworm-slim .

# Both stages use the same base (the runtime must run the native module the build compiled).
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build

# better-sqlite3 compiles from source when its prebuilt binary cannot be downloaded: python3,
# make and g++; node-gyp takes the headers of the image's own Node (/usr/local/include/node)
# instead of downloading them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

WORKDIR /app

# Dependencies first: this layer is reused until package.json or the lockfile changes.
# Like package.json's allowScripts (which npm 10 ignores), only better-sqlite3 runs its install
# script; the others (ssh2, cpu-features: optional, unused) do not. A package added to
# allowScripts must be added to the `npm rebuild` line too.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts \
 && npm rebuild better-sqlite3 \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

# The server (tsc -p tsconfig.build.json -> dist/) and the web console (Vite -> web/dist/).
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY web ./web
RUN npm run build

# Only production dependencies go into the runtime stage. Of better-sqlite3's native build
# only the addon itself is needed (objects, static library and the SQLite sources are ~13 MB).
RUN npm prune --omit=dev --ignore-scripts \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/better_sqlite3.node \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/better_sqlite3.node \
 && cd /app \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

ENV NODE_ENV=production \
    CLAWLOOPS_DATA_DIR=/data \
    CLAWLOOPS_HOST=0.0.0.0 \
    CLAWLOOPS_PORT=8080

# The data directory exists, owned by node and private: a fresh named volume mounted on /data
# copies that ownership and mode, so uid 1000 can write its database there. No VOLUME line: an
# anonymous volume per `docker run` is easy to lose track of; mount a named volume on /data.
RUN install -d -o node -g node -m 0700 /data

WORKDIR /app
# Owned by root and read-only for the process: it cannot modify its own code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist

USER node
EXPOSE 8080

# No curl in the image: Node's own fetch. The port follows CLAWLOOPS_PORT.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.CLAWLOOPS_PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "dist/main.js"]

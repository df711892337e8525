# correlator's container image: `correlator serve`, as a non-root user, from a virtual
# environment built in a first stage (no compiler, pip cache or sources in the final image).
#
#   buildah bud --isolation chroot -t correlator:0.1.0 .        (or docker/podman build)
#   --build-arg BASE=...   any Debian-like image with python3 >= 3.11 and its venv module
#
# Health is Kubernetes' job (probes on /healthz and /readyz), so there is no HEALTHCHECK.
ARG BASE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/correlator
WORKDIR /src
# The dependencies exactly as locked, each checked against its hash; then correlator alone.
COPY requirements.lock ./
RUN /opt/correlator/bin/pip install --no-compile --require-hashes -r requirements.lock
# correlator/assets links to the template folders at the top level: they come along.
COPY pyproject.toml README.md ./
COPY alert_rules ./alert_rules
COPY dashboards ./dashboards
COPY correlator ./correlator
RUN /opt/correlator/bin/pip install --no-compile --no-deps . \
 && /opt/correlator/bin/pip check \
 && /opt/correlator/bin/python -m compileall -q /opt/correlator/lib \
 && rm -rf /opt/correlator/bin/pip* /opt/correlator/lib/python3*/site-packages/pip

FROM ${BASE}
COPY --from=build /opt/correlator /opt/correlator
# One writable place of its own, the working directory: the default SQLite file
# (sqlite:///correlator.db) lands there, on a volume in Kubernetes.
RUN mkdir -p /var/lib/correlator && chown 10001:10001 /var/lib/correlator
ENV PATH=/opt/correlator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    CORRELATOR_SERVER_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/correlator
EXPOSE 8080
ENTRYPOINT ["correlator"]
CMD ["serve"]

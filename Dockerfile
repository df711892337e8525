# correlator's container image: `correlator serve`, as a non-root user, from a virtual
# environment built in a first stage (no compiler, pip cache or sources in the final image).
#
#   docker build -t ghcr.io/correlator/correlator:0.1.0 .     (the chart's default image name;
#   buildah bud --isolation chroot / podman build work too)
#
# BASE: any Debian-like image with python3 >= 3.11 and its venv module. The default is a tag,
# which moves; for a reproducible build pin it by digest, looked up where a registry is
# reachable (`crane digest docker.io/library/python:3.11-slim-bookworm`, or
# `docker buildx imagetools inspect` on it):
#   --build-arg BASE=docker.io/library/python:3.11-slim-bookworm@sha256:<digest>
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
# Slimmer where it costs nothing at run time: the libraries' own test suites (pandas', numpy's,
# matplotlib's; never imported by correlator) and matplotlib's sample data go before the
# byte-compilation, so neither they nor their __pycache__ reach the image; so do pip and the
# C headers numpy ships for building extensions.
RUN /opt/correlator/bin/pip install --no-compile --no-deps . \
 && /opt/correlator/bin/pip check \
 && site=$(echo /opt/correlator/lib/python3*/site-packages) \
 && for package in pandas numpy matplotlib mpl_toolkits; do \
      find "$site/$package" -depth -type d -name tests -exec rm -rf {} + ; done \
 && rm -rf "$site/matplotlib/mpl-data/sample_data" "$site/numpy/_core/include" \
      /opt/correlator/bin/pip* "$site"/pip "$site"/pip-*.dist-info \
 && find /opt/correlator -depth -type d -name __pycache__ -exec rm -rf {} + \
 && /opt/correlator/bin/python -m compileall -q /opt/correlator/lib

FROM ${BASE}
COPY --from=build /opt/correlator /opt/correlator
# One writable place of its own, the working directory: the default SQLite file
# (sqlite:///correlator.db) lands there, on a volume in Kubernetes. Group 0 may write it too,
# so an arbitrary UID (OpenShift's restricted SCC runs one in group 0) works without a volume.
RUN mkdir -p /var/lib/correlator && chown 10001:0 /var/lib/correlator \
 && chmod 0775 /var/lib/correlator
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

# The operator's image: a binary built outside it (make build, or a release
# build) with the packaged Lambda handlers, on a base that holds glibc, the
# CA certificates and a non-root user, and no shell. The build context is
# what `scripts/image.sh context` lays out:
#   sluice-operator              the operator executable (glibc, x86_64)
#   handlers/manifest.json       the handlers' manifest (make handlers)
#   handlers/sluice-handlers.zip the handlers' Lambda package
#
#   docker build -t REGISTRY/sluice-operator:TAG "$(scripts/image.sh context release)"
#
# scripts/image.sh builds this same file here, without a daemon or a
# registry, on a base it assembles from the build machine's Debian 12 files
# (what distroless' cc-debian12 holds), and imports it into the local
# cluster's containerd.
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY handlers/ /opt/sluice/handlers/
COPY sluice-operator /usr/local/bin/sluice-operator
# distroless' nonroot user; the Deployment runs it with runAsNonRoot.
USER 65532:65532
ENV SLUICE_HANDLERS_DIR=/opt/sluice/handlers
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sluice-operator"]

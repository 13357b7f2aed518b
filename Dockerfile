# tokend's image: the static binary, CA certificates and a non-root user,
# nothing else. `make image` builds the binary (CGO_ENABLED=0) and this root
# file system under bin/image/rootfs first, so the build needs no base image
# and no registry: `docker build` or `podman build` of a scratch stage.
FROM scratch
COPY bin/image/rootfs/ /
USER 65532:65532
# The admin listener is reachable from outside the container (for
# Prometheus and probes), so tokend refuses to start without
# TOKEND_ADMIN_TOKEN or TOKEND_ADMIN_TOKEN_FILE.
ENV TOKEND_ADDR=:8080 TOKEND_ADMIN_ADDR=:8081
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/tokend", "healthcheck", "http://127.0.0.1:8081/readyz"]
ENTRYPOINT ["/tokend"]

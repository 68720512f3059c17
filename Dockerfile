# vaultgate: a multi-stage build; the image runs as a non-root user and holds no shell.
#   docker build -t vaultgate .
#   docker run -p 4000:4000 -v $PWD/config.yaml:/etc/vaultgate/config.yaml:ro vaultgate
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The commit shown by --version comes from git when .git is in the context; without it the
# version says so.
RUN cargo build --release --locked -p vaultgate \
 && install -D -m 0755 target/release/vaultgate /out/vaultgate

# glibc, CA certificates and a `nonroot` user (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/vaultgate /usr/local/bin/vaultgate
USER nonroot:nonroot
EXPOSE 4000
ENTRYPOINT ["/usr/local/bin/vaultgate"]
CMD ["--config", "/etc/vaultgate/config.yaml", "--host", "0.0.0.0", "--port", "4000"]

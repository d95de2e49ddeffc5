# Debian packages the build, the demo and the tests need. Installed only when
# missing; silent when nothing is.
DEB_PKGS := gcc make libmbedtls-dev libcjson-dev libcmocka-dev libsleef-dev \
            python3-numpy python3-sklearn openssl time

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# For the aarch64 cross build and its tests under qemu (Debian multiarch).
CROSS_PKGS := gcc-aarch64-linux-gnu qemu-user libmbedtls-dev:arm64 libcjson-dev:arm64 \
              libcmocka-dev:arm64 libsleef-dev:arm64

.PHONY: deps-cross
deps-cross:
	@missing=""; for p in $(CROSS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  dpkg --print-foreign-architectures | grep -qx arm64 || $$SUDO dpkg --add-architecture arm64; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

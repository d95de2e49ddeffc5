# Debian packages the build, the demo and the tests need. Installed only when
# missing; silent when nothing is.
DEB_PKGS := gcc make libmbedtls-dev libcjson-dev libcmocka-dev libsleef-dev \
            python3-numpy python3-scipy python3-sklearn openssl time

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

# $(call tr_apt_source,PACKAGE,DIR): `apt-get source PACKAGE` in DIR (for
# make device's mbedTLS and make static-sleef's SLEEF). apt-get source needs a
# deb-src entry: bookworm's is added only if apt knows no source for PACKAGE.
define tr_apt_source
	@mkdir -p $(2)
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	command -v dpkg-source >/dev/null || { \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dpkg-dev >/dev/null; }; \
	if ! apt-cache showsrc $(1) 2>/dev/null | grep -q '^Package:'; then \
	  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' | \
	    $$SUDO tee /etc/apt/sources.list.d/tinyroute-deb-src.sources >/dev/null; \
	  $$SUDO apt-get update -qq; \
	fi
	rm -rf $(2)/$(1)*
	cd $(2) && apt-get source -qq $(1) 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
endef

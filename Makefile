# Installs ninja-fs with everything a system needs: the binary, its manual
# page, shell completions and the systemd unit.
#
#   make install                      # as root: under /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make uninstall
#
# mount(8) runs ninja-fs through mount.fuse3 with a fixed PATH
# (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), so
# `mount -t fuse.ninja-fs` and fstab lines need the binary in one of those:
# PREFIX=/usr/local or /usr. BINARY= installs a binary built elsewhere.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
BINARY ?= target/release/ninja-fs

BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
UNITDIR = $(DESTDIR)$(PREFIX)/lib/systemd/system

.PHONY: all install uninstall

all: $(BINARY)

target/release/ninja-fs:
	$(CARGO) build --release --locked

install: $(BINARY)
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR) $(UNITDIR)
	install -m 755 $(BINARY) $(BINDIR)/ninja-fs
	$(BINARY) man > $(MANDIR)/ninja-fs.1
	$(BINARY) completions bash > $(BASHDIR)/ninja-fs
	$(BINARY) completions zsh > $(ZSHDIR)/_ninja-fs
	$(BINARY) completions fish > $(FISHDIR)/ninja-fs.fish
	install -m 644 contrib/ninja-fs@.service $(UNITDIR)/ninja-fs@.service

uninstall:
	rm -f $(BINDIR)/ninja-fs $(MANDIR)/ninja-fs.1 $(BASHDIR)/ninja-fs \
		$(ZSHDIR)/_ninja-fs $(FISHDIR)/ninja-fs.fish $(UNITDIR)/ninja-fs@.service

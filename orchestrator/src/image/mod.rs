//! The guest initramfs: init, sshd, module tools, the kernel's modules.

//! QEMU: argv builder, accel probe, QMP, serial console, VFIO.

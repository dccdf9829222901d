"""ibmig's engines over Linux's user-space MAD interface (`/dev/infiniband/umadN`).

- `abi`: the `ib_user_mad` header, agent registration and the ioctl numbers as bytes.
- `device`: finds a port's umad device through sysfs, opens it, registers agents,
  sends and receives MADs (pure Python but for `open`, see its docstring: this is
  what lets ibsim's libumad2sim.so serve it when preloaded).
- `runtime`: `UmadRuntime` pumps the SM and SA (`SmNode`) over a device.

`ibmig sm --umad` runs it; on ibsim it runs under `LD_PRELOAD=libumad2sim.so`.
"""

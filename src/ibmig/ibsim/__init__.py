"""ibmig's SM and SA engines over the ibsim fabric simulator (linux-rdma/ibsim).

- `client`: ibsim's socket protocol in pure Python (no LD_PRELOAD): control and
  data frames, `IbsimClient`.
- `runtime`: `IbsimRuntime` pumps the SM (and SA) engines over an issm client.
- `sa_client`: `SaClient`, an SA requester and InformInfo subscriber on ibsim.
- `harness`: starts and stops ibsim, OpenSM, `ibmig sm` and infiniband-diags tools
  for the interop tests and the benchmark.
"""

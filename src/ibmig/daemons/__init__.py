"""The signalling mechanism as processes: a dom0 daemon per physical host and a guest
agent per VM, on a real management interface (`ibmig.umad`).

- `channel`: the local channel between dom0, its guests and the orchestrator (a
  Unix socket standing for virtio-serial or vsock), its framing and messages.
- `dom0`: `Dom0Daemon`, the `core.host.HostAgent` engine pumped over a umad port,
  with the paravirtualized QP1 of its VMs (`ibmig dom0`).
- `guest`: `GuestDaemon`, the `core.guest.GuestAgent` engine pumped over dom0's
  channel (`ibmig guest`).
- `lab`: starts ibsim, ibmig's SM, the daemons and guests and migrates a VM under
  each strategy (`ibmig lab`).
- `log`: one JSON line per event, with the wall-clock time.
"""

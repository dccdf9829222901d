"""ibmig: keeps RDMA connections alive when SR-IOV InfiniBand VMs live-migrate.

Implements the signalling mechanism of Guay et al., "A Scalable Signalling
Mechanism for VM Migration with SR-IOV over InfiniBand" (ICPADS 2012), over a
subnet built from wire-exact InfiniBand management datagrams.
"""

__version__ = "0.1.0"

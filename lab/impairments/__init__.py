"""Network impairments applied on the lab's router (the host side: the router client,
live changes, capture, watch). The model and the planner the router also runs are in
``lab.programs.shared`` (``impairment``, ``backends``)."""

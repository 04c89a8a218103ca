"""See the packets: the router's captures read as packets, each packet's fate at the router,
and ladder diagrams (SVG and text) of them.

Pure modules: ``model`` (a packet), ``pcap`` (pcap bytes -> packets, with dpkt), ``fates``
(what the router did to each packet, from its captures on both sides), ``ladder`` (rows of a
ladder diagram, folding long transfers, the text form), ``svg`` (the SVG form).  I/O:
``capture`` (the ONE adapter onto the router's capture API) and ``trace`` (`lab trace`).
"""

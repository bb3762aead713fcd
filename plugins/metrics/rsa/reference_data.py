"""Peer reference data for checking RSA: Net2Brain's own test fixtures and the 78-image fMRI RDMs they use.

* ``net2brain_reference`` (registered): Net2Brain's ResNet18 features of the 78 Algonauts-2019 images, its model RDMs
  and its ``RSA(...).evaluate()`` results (Spearman rho^2 over 15 subjects, noise ceilings, t-test p, SEM).
* the two 15-subject EVC/IT RDM files those results were computed from, read through the classic-RSA benchmark
  plugin's declaration and loader (one declaration of each file in the project).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cortexbench.data import DatasetSpec, resolve
from cortexbench.errors import DataError

HERE = Path(__file__).resolve().parent
N_IMAGES = 78
NET2BRAIN_CITATION = ("Bersch D, Vilas MG, Saba-Sadiya S, Schaumloeffel T, Dwivedi K, Sartzetaki C, Cichy RM, Roig G "
                      "(2025). Net2Brain: a toolbox to compare artificial vision models with human brain responses. "
                      "Front Neuroinform 19:1515873.")

NET2BRAIN_REFERENCE = DatasetSpec.from_manifest(
    "net2brain_reference", HERE / "net2brain_reference.tsv",
    description="Net2Brain test fixtures (commit b59ed47): ResNet18 features of the 78 Algonauts-2019 images, model "
                "RDMs, and reference RSA results against the 15-subject EVC/IT fMRI RDMs",
    license="BSD-3-Clause", citation=NET2BRAIN_CITATION)

def features(layer: str) -> np.ndarray:
    """Net2Brain case 1 ResNet18 ``layer`` features, flattened: ``(78, n_features)`` float64 in image order."""
    rows = []
    for k in range(1, N_IMAGES + 1):
        path = resolve(NET2BRAIN_REFERENCE, f"test_cases/case1/features/ResNet18_image_{k:02d}.npz")
        with np.load(path) as archive:
            if layer not in archive:
                raise DataError(f"{path}: no layer {layer!r}; it holds {sorted(archive.files)}")
            rows.append(archive[layer].reshape(-1).astype(np.float64))
    return np.stack(rows)


def model_rdm(case: str, layer: str) -> np.ndarray:
    """Net2Brain's stored model RDM ``(78, 78)`` for ``case`` ("case1"/"case2") and ``layer``."""
    with np.load(resolve(NET2BRAIN_REFERENCE, f"test_cases/{case}/rdm/{layer}.npz")) as archive:
        return archive["arr_0"]


def brain_rdms(roi: str) -> np.ndarray:
    """The 15 subjects' ``(15, 78, 78)`` RDMs of ``roi`` ("EVC" or "IT"), rows in image order."""
    from cortexbench.plugins.benchmarks.classic_rsa.cichy_algonauts import rdms

    return rdms("78images", roi).rdms


def results(case: str) -> list[dict]:
    """Net2Brain's ``results.csv`` rows with numbers parsed; ``roi`` is "EVC"/"IT" and ``layer`` the RDM's name."""
    rows = []
    with open(resolve(NET2BRAIN_REFERENCE, f"test_cases/{case}/rsa/results.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({
                "roi": row["ROI"].split("fmri_")[1].split("_RDMs")[0],
                "layer": row["Layer"].split(") ", 1)[1].removesuffix(".npz"),
                "R2": float(row["R2"]), "%R2": float(row["%R2"]),
                "R2_array": np.array(row["R2_array"].strip("[]").replace("\n", " ").split(), dtype=float),
                "p": float(row["Significance"]), "SEM": float(row["SEM"]),
                "LNC": float(row["LNC"]), "UNC": float(row["UNC"]),
            })
    return rows

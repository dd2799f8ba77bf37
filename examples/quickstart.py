"""mmpipe from Python, end to end: simulate Simulation I, fit MultiLoReFT for two seeds, read
the test components, apply the fitted adapter to embeddings, probe, and query the scores.

    python examples/quickstart.py [STORE_DIR]     # default: ./mmpipe-quickstart (a new or mmpipe store)

Small on purpose (1000 samples, epochs capped) so it runs in seconds; the scores are not the
paper's (`mmpipe demo` runs the full-size setting).
"""

from __future__ import annotations

import sys

import mmpipe

store = mmpipe.open_store(sys.argv[1] if len(sys.argv) > 1 else "mmpipe-quickstart", create=True)

# 1. data: Simulation I (two modalities m1, m2 with known shared and specific factors)
print(mmpipe.simulate(store, "sim1", n=1000, seed=0))
print(mmpipe.list_features(store, "sim1")[["name", "kind", "rows", "dim"]])
train = mmpipe.load_features(store, "sim1.m1.simulated", split="train")
print("train m1:", tuple(train.values.shape), "labels:", [c for c in train.rows.columns if c.startswith("y")])

# 2. fit MultiLoReFT for two seeds (a seed already fitted with this config is found, not refitted)
capped = {"max_epochs_shared": 5, "max_epochs_private": 5, "max_epochs_joint": 10, "device": "cpu"}
runs = mmpipe.fit(store, "multiloreft", "sim1", seeds=[0, 1], config=capped)
print("runs:", [run.run_id for run in runs])

# 3. one run's components on the test split, with the manifest rows (labels) beside them
test = mmpipe.load_components(store, runs[0], split="test")
print({name: tuple(value.shape) for name, value in test.values.items()}, len(test.rows), "test rows")

# 4. the fitted adapter applied to embeddings (here the stored test rows: it reproduces the components)
model = mmpipe.load_adapter(store, runs[0])
inputs = {m: mmpipe.load_features(store, f"sim1.{m}.simulated", split="test").values for m in ("m1", "m2")}
z = model.transform(inputs)
print("z_s from the checkpoint equals the stored z_s:",
      bool((z["z_s"] - test.values["z_s"]).abs().max() < 1e-4))

# 5. probes (fit on train, C chosen on val, scored on test) saved to the results DB
scores = mmpipe.probe(store, runs)
print(scores[scores["component"] == "z_s"][["run_id", "label", "metric", "value", "protocol"]])

# 6. any SQL over the results DB, as a DataFrame: each component's test score on each label, mean over
#    seeds (y_s: shared factor, accuracy; y_m1/y_m2: modality-specific factors, MSE, lower is better)
table = mmpipe.results(store, "SELECT label, metric, component, avg(value) AS mean, count(*) AS seeds FROM probes "
                              "WHERE metric IN ('accuracy', 'mse') AND component IN ('z_s', 'z_m1', 'z_m2') "
                              "GROUP BY label, metric, component ORDER BY label, component")
print(table.to_string(index=False))

#!/usr/bin/env python3
"""How close to the oracle can any learner get on simulated data? Information ceilings.

## Response

The simulator's true response probability of a delivery (src/sim/oracle.rs, `response`) is

    p_open          = sigmoid(r_open  + ln channel_responsiveness[channel])
    p_click | open  = sigmoid(r_click + ln kind_responsiveness[kind] - 1.5 * annoyed[kind])
    p_conv  | click = sigmoid(r_conv  - 0.75 * annoyed[kind])

where the r terms hold everything else (base rates, fatigue, the action's appeal, the
customer's hidden satisfaction, ...) and the three per-customer traits are never logged.
A learner can know the traits only through the customer's own past responses.

This script builds a predictor that is *more* informed than any learner: it knows every r
term exactly (the true model, the hidden state), and it learns the traits the only way
the data allow, as the Bayes posterior given every earlier delivery of the same customer
and its outcome (opened, clicked, converted), starting from the simulator's own priors
(src/sim/customer.rs): ln channel_responsiveness ~ N(-0.125, 0.5^2), ln
kind_responsiveness ~ N(-0.08, 0.4^2), annoyed ~ Bernoulli(0.10 offer, 0.12 message,
0.06 service). Its prediction for a delivery is the posterior mean of the true
probability, given only what happened strictly before it.

It reports, on the response training set's validation rows (and their `test` half, the
rows of the models' reports), the AUC of the oracle, of this Bayes predictor and of the
same predictor with the traits at their prior (no learning from history), and each one's
oracle ratio (AUC - 0.5) / (AUC_oracle - 0.5): the ratio that issue #4 asks of a learner.
The response is a click (the default `response_label`). The closed loop's `bayes` and
`bayes-limited` policies (src/ope/bayes.rs) choose with the same posterior.

## Channel preference

The channel task's oracle scores each of web, app and store by the customer's hidden
session affinity (the share of their sessions on that channel), and its ratio is the macro
one-vs-rest AUC over those three classes. The affinities are drawn once per customer
(src/sim/customer.rs): affinity = b * E / sum(b * E) with E_i ~ max(Exp(1), 0.05) and
b = (0.55, 0.3 * youth, 0.15), youth = 1.6 - 0.25 * age band index (the age band is in the
customers table). Each session picks its channel from the affinities, so the most any
learner can know of them is the posterior given the customer's own session counts. The
Bayes predictor here is that posterior mean (importance sampling from the exact prior),
counting only true sessions: it drops the landing visit 1 s after each click and the web
visit a new customer makes when joining. The label (the channel of the next engagement)
is not driven by the affinities alone (a click on an email is an engagement too), so this
is the ceiling of estimating the oracle's own scores, not a bound on every use of the data.

    python3 scripts/oracle-ceiling.py [DATA_DIR]   # default data/quickstart

Both need pyarrow, numpy and pandas (the notebooks' venv has them:
$HOME/.cache/baton/venv/bin/python) and a data directory made by the simulator, with the
response training set built (`baton quickstart` makes both).
"""

import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

KINDS = {"offer": 0, "message": 1, "service": 2}
ANNOYED_PRIOR = np.array([0.10, 0.12, 0.06])
CHANNEL_TRAIT = {
    "email": "resp_email",
    "sms": "resp_sms",
    "push": "resp_push",
    "call_center": "resp_call_center",
    "mail": "resp_mail",
    "web": "resp_web",
    "app": "resp_app",
}
KIND_TRAIT = ["resp_offer", "resp_message", "resp_service"]
ANNOYED_TRAIT = ["annoyed_by_offer", "annoyed_by_message", "annoyed_by_service"]


def grid(mu, sigma, n=81):
    x = np.linspace(mu - 5 * sigma, mu + 5 * sigma, n)
    logw = -0.5 * ((x - mu) / sigma) ** 2
    return x, logw - np.logaddexp.reduce(logw)


X_OPEN, PRIOR_OPEN = grid(-0.125, 0.5)
Y_CLICK, PRIOR_Y = grid(-0.08, 0.4)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def log_bern(hit, p):
    return np.log(np.clip(p if hit else 1.0 - p, 1e-300, None))


def auc(score, label):
    """ROC AUC with ties counted half (the Mann-Whitney statistic)."""
    r = pd.Series(score).rank(method="average").to_numpy()
    pos = label.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return (r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def is_tune(customer_id):
    """src/models/data.rs `is_tune`: FNV-1a of the id, rotated right 17, even = tune."""
    h = 0xCBF29CE484222325
    for b in customer_id.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return ((h >> 17) | (h << 47)) & 1 == 0


def kind_prior(k):
    """Log prior over (y, annoyed) as a (2, n) array: row 0 not annoyed, row 1 annoyed."""
    a = ANNOYED_PRIOR[k]
    return np.stack([PRIOR_Y + np.log(1 - a), PRIOR_Y + np.log(a)])


def predict(d):
    """Posterior-mean p_click (and the prior-trait p_click) of every delivery, in order."""
    bayes = np.empty(len(d))
    prior = np.empty(len(d))
    annoy = np.array([0.0, 1.0])[:, None]
    for _, rows in d.groupby("customer_id", sort=False):
        post_open = {}
        post_kind = {}
        for i, r in zip(rows.index, rows.itertuples(index=False)):
            lo = post_open.get(r.channel, PRIOR_OPEN)
            lk = post_kind.get(r.kind, kind_prior(r.kind))
            po = sigmoid(r.r_open + X_OPEN)
            pc = sigmoid(r.r_click + Y_CLICK[None, :] - 1.5 * annoy)
            wo = np.exp(lo - np.logaddexp.reduce(lo))
            wk = np.exp(lk - np.logaddexp.reduce(lk.ravel()))
            bayes[i] = (wo * po).sum() * (wk * pc).sum()
            w0o = np.exp(PRIOR_OPEN)
            w0k = np.exp(kind_prior(r.kind))
            prior[i] = (w0o * po).sum() * (w0k * pc).sum()
            # learn from what happened (opened ⊇ clicked ⊇ converted)
            post_open[r.channel] = lo + log_bern(r.opened, po)
            if r.opened:
                lk = lk + log_bern(r.clicked, pc)
                if r.clicked:
                    pv = sigmoid(r.r_conv - 0.75 * annoy) * np.ones_like(pc)
                    lk = lk + log_bern(r.converted, pv)
                post_kind[r.kind] = lk
    return bayes, prior


def response_ceiling(data):
    config = tomllib.loads((data / "config.toml").read_text()) if (data / "config.toml").exists() else None
    if config is None:
        config = tomllib.loads(Path("baton.toml").read_text())
    kind_of = {a["id"]: KINDS[a["kind"]] for a in config["actions"]}

    dec = pq.read_table(data / "ground_truth_decisions.parquet").to_pandas()
    truth = (
        pq.read_table(data / "ground_truth.parquet").to_pandas().drop_duplicates("customer_id")
    )
    truth = truth.set_index("customer_id")
    dec = dec.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    unknown = set(dec["action_id"]) - set(kind_of)
    if unknown:
        sys.exit(f"oracle-ceiling: actions {sorted(unknown)} are not in the catalog")
    dec["kind"] = dec["action_id"].map(kind_of)
    t = truth.loc[dec["customer_id"]]
    ch_trait = np.array([t[CHANNEL_TRAIT[c]].iat[i] for i, c in enumerate(dec["channel"])])
    k_trait = np.array([t[KIND_TRAIT[k]].iat[i] for i, k in enumerate(dec["kind"])])
    annoyed = np.array([t[ANNOYED_TRAIT[k]].iat[i] for i, k in enumerate(dec["kind"])], float)
    # the r terms, backed out of the true probabilities and the true traits
    dec["r_open"] = logit(dec["p_open"]) - np.log(ch_trait)
    dec["r_click"] = logit(dec["p_click"] / dec["p_open"]) - np.log(k_trait) + 1.5 * annoyed
    dec["r_conv"] = logit(dec["p_convert"] / dec["p_click"]) + 0.75 * annoyed
    # the model of the module docs must give back the true probabilities
    check = sigmoid(dec["r_open"] + np.log(ch_trait)) * sigmoid(
        dec["r_click"] + np.log(k_trait) - 1.5 * annoyed
    )
    err = np.abs(check - dec["p_click"]).max()
    if err > 1e-9:
        sys.exit(f"oracle-ceiling: the oracle's form does not match the simulator ({err})")
    dec["bayes"], dec["prior"] = predict(dec)

    ds_path = data / "datasets" / "response.parquet"
    if not ds_path.exists():
        sys.exit(f"oracle-ceiling: no response training set at {ds_path}: run the quickstart")
    ds = pq.read_table(ds_path, columns=["decision_id", "customer_id", "split", "label"]).to_pandas()
    rows = ds.merge(dec[["decision_id", "p_click", "bayes", "prior"]], on="decision_id")
    val = rows[rows["split"] == "validation"]
    # the models' tune/test halves (src/models/data.rs, `is_tune`)
    test = val[~val["customer_id"].map(is_tune)]
    print(f"deliveries {len(dec):,}; response rows {len(rows):,}; validation {len(val):,}")
    for name, part in [("validation", val), ("test", test)]:
        y = part["label"].to_numpy()
        a_or = auc(part["p_click"].to_numpy(), y)
        print(f"{name}: {len(part):,} rows, response rate {y.mean():.4f}, oracle AUC {a_or:.4f}")
        for col, what in [
            ("bayes", "Bayes: exact hidden state, traits learnt from the customer's history"),
            ("prior", "same, traits at their prior (no learning from history)"),
        ]:
            a = auc(part[col].to_numpy(), y)
            print(f"  {what}: AUC {a:.4f}, oracle ratio {(a - 0.5) / (a_or - 0.5):.3f}")


AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
CLASSES = ["web", "app", "store"]


def posterior_affinity(counts, youth, draws=20000, seed=7):
    """Posterior mean affinities (n, 3) of customers with session `counts` (n, 3)."""
    rng = np.random.default_rng(seed)
    e = np.maximum(rng.exponential(1.0, size=(draws, 3)), 0.05) * np.array([0.55, 0.3 * youth, 0.15])
    aff = e / e.sum(axis=1, keepdims=True)
    log_aff = np.log(aff)
    out = np.empty((len(counts), 3))
    for lo in range(0, len(counts), 500):
        ll = counts[lo : lo + 500] @ log_aff.T
        w = np.exp(ll - ll.max(axis=1, keepdims=True))
        out[lo : lo + 500] = (w @ aff) / w.sum(axis=1, keepdims=True)
    return out


def channel_ceiling(data):
    import pyarrow.dataset as pds

    ds_path = data / "datasets" / "channel.parquet"
    if not ds_path.exists():
        sys.exit(f"oracle-ceiling: no channel training set at {ds_path}: run the quickstart")
    cols = ["customer_id", "cutoff", "split", "label"] + [f"oracle_affinity_{c}" for c in CLASSES]
    ds = pq.read_table(ds_path, columns=cols).to_pandas()
    val = ds[ds["split"] == "validation"].copy()
    cutoff = val["cutoff"].iloc[0]
    ev = (
        pds.dataset(data / "events")
        .to_table(columns=["customer_id", "ts", "event_type", "channel"])
        .to_pandas()
    )
    ev = ev[ev["ts"] < cutoff]
    clicks = ev[ev["event_type"] == "action_clicked"]
    landing = set(zip(clicks["customer_id"], clicks["ts"] + pd.Timedelta(seconds=1)))
    visits = ev[(ev["event_type"] == "visit") & ev["channel"].isin(CLASSES)]
    keep = [(c, t) not in landing for c, t in zip(visits["customer_id"], visits["ts"])]
    visits = visits[keep]
    customers = pq.read_table(data / "customers.parquet").to_pandas().set_index("customer_id")
    start = ev["ts"].min().normalize()
    # a customer who joined during the run opens with a web session on the joining day
    joined = customers["created_at"] >= start
    first = visits.sort_values("ts").drop_duplicates("customer_id")
    first = first[first["customer_id"].map(joined).fillna(False).astype(bool)]
    first = first[
        (first["channel"] == "web")
        & (first["ts"].dt.normalize() == first["customer_id"].map(customers["created_at"]).dt.normalize())
    ]
    visits = visits.drop(first.index)
    counts = (
        visits.groupby(["customer_id", "channel"]).size().unstack(fill_value=0).reindex(columns=CLASSES, fill_value=0)
    )
    val = val.join(counts, on="customer_id").fillna({c: 0 for c in CLASSES})
    val["age"] = val["customer_id"].map(customers["age_band"]).map(AGE_BANDS.index)
    post = np.empty((len(val), 3))
    for age, idx in val.groupby("age").indices.items():
        post[idx] = posterior_affinity(val[CLASSES].to_numpy(float)[idx], 1.6 - 0.25 * age)
    for i, c in enumerate(CLASSES):
        val[f"bayes_{c}"] = post[:, i]
    test = val[~val["customer_id"].map(is_tune)]
    print(f"channel: {len(val):,} validation rows, {len(visits):,} sessions before {cutoff:%Y-%m-%d}")
    for name, part in [("validation", val), ("test", test)]:
        y = part["label"].to_numpy()
        macro = {}
        for what in ["oracle_affinity", "bayes"]:
            macro[what] = np.mean([auc(part[f"{what}_{c}"].to_numpy(), y == c) for c in CLASSES])
        a_or, a = macro["oracle_affinity"], macro["bayes"]
        print(f"{name}: {len(part):,} rows, oracle macro AUC {a_or:.4f}")
        print(
            f"  Bayes: posterior mean affinity from the customer's sessions: macro AUC {a:.4f}, "
            f"oracle ratio {(a - 0.5) / (a_or - 0.5):.3f}"
        )


def main():
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "data/quickstart")
    print("== response")
    response_ceiling(data)
    print("== channel")
    channel_ceiling(data)


if __name__ == "__main__":
    main()

"""Production watch: drift, measured and estimated performance on sampled live traffic.

``sample`` reads what the serving runtime wrote, ``windows`` cuts it by day or by rows,
``drift`` and ``estimate`` are pure computations, ``analysis`` puts them together into the
results document's ``watch`` section, ``rules`` decides the alarms, ``report`` renders it and
``publish`` reports it on GitHub.
"""

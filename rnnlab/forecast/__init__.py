"""Time-series forecasting with recurrent networks: readers (``data``), scaling and
differencing (``transform``), probabilistic heads (``heads``), the models
(``model``), training on the shared trainer (``train``), metrics, baselines and the
rolling-origin backtest (``metrics``, ``baselines``, ``classical``, ``backtest``),
figures and the HTML page (``report``)."""

"""pySigma plugin entry: ``sigma convert -t cep`` finds the engine's backend here."""

from cep.sigma.backend import CepBackend

backends = {"cep": CepBackend}

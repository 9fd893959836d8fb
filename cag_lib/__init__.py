"""cag_lib: Classifiers as Generators, the small tested library behind the tutorial book.

Modules, each with one job: data (Fashion-MNIST), shapes (the coloured-shapes world), models
(classifier wrapper, ensembles), mae (the masked autoencoder), zoo (named bundles of trained
models), train (how the small worlds' models were made), generate (the sampler), losses (the
paper's equations), stats (class feature statistics), metrics (judging), viz (pictures), demo
(the main job).
"""
from .data import FMNIST_CLASSES, DataNotFoundError, load_fashion_mnist, load_world
from .mae import MaskedAutoencoder
from .models import Classifier, ClassifierOutput, Ensemble, accuracy
from .zoo import BUNDLES, Bundle, load_bundle
from .generate import GenerateConfig, Result, generate

__version__ = "0.1.0"
__all__ = ["FMNIST_CLASSES", "DataNotFoundError", "load_fashion_mnist", "load_world", "MaskedAutoencoder",
           "Classifier", "ClassifierOutput", "Ensemble", "accuracy", "BUNDLES", "Bundle", "load_bundle",
           "GenerateConfig", "Result", "generate"]

"""cag_lib: Classifiers as Generators, the small tested library behind the tutorial book.

Modules, each with one job, in the direction of dependency (no module imports one below it):
errors (error types, offline and device checks); data, shapes (the small worlds); models (the
classifier wrapper and networks), mae (the masked autoencoder), clip (open_clip as a classifier),
gan, diffusion (the baselines); bundles (what a bundle is), zoo (named bundles of shipped
models), prompts, shapes_text, imagenet (the text and ImageNet bundles); losses (the paper's
equations), objectives (their weighted sum), samplers (Adam, MALA), recording, config,
generate (the loop); stats, metrics, panel (judging); recipes, sample (the sampling command),
train, viz, demo, bench (the benchmarks' harness).
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

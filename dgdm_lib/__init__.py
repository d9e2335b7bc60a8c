"""dgdm_lib: the small library behind the DGDM book (weakly supervised object localization)."""

from dgdm_lib.config import data_dir, env_report, get_device, quick_mode, seed_everything

__version__ = "0.1.0"
__all__ = ["data_dir", "env_report", "get_device", "quick_mode", "seed_everything", "__version__"]

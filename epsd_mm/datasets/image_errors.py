"""Name the image file that cannot be decoded, instead of an ``AssertionError`` traceback."""
from ..utils.checkpoints import describe_error
from ..utils.errors import UserError


def _is_unreadable_image(error):
    # mmcv's LoadImageFromFile asserts on an image that its decoder returns as None; PIL raises
    # OSError (UnidentifiedImageError, "image file is truncated") for broken files
    text = str(error)
    return (isinstance(error, AssertionError) and 'failed to load image' in text) or (
        isinstance(error, OSError) and 'image file' in text)


class NamesUnreadableImages:
    """Dataset mixin: an image that cannot be read raises
    :class:`~epsd_mm.utils.errors.UserError` naming the file (from a dataloader worker, the
    tools' :func:`~epsd_mm.utils.errors.cli_main` still prints it as one line)."""

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except (AssertionError, OSError) as e:
            if not _is_unreadable_image(e):
                raise
            path = self.get_data_info(idx).get('img_path')
            raise UserError(f'cannot read image {path}: it is damaged, truncated or not an '
                            f'image ({describe_error(e)}); replace it or remove it from the '
                            'dataset') from None

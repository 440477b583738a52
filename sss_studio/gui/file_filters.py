"""File-dialog filters for photos and projects (menus and the window both use them)."""

from ..io.project import PROJECT_SUFFIX

PHOTO_FILTER = "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.bmp *.webp);;All files (*)"
PROJECT_FILTER = f"SSS Studio projects (*{PROJECT_SUFFIX})"
PSD_FILTER = "Photoshop documents (*.psd)"

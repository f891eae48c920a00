/* A tiny RGB raster for the figures nnlock writes (no plotting library in C is worth
 * a dependency for three pictures): rectangles, lines, a 5x7 font, PNG output. */
#ifndef NNL_PLOT_H
#define NNL_PLOT_H

#include "../core/core.h"

typedef struct nnl_canvas {
    int w, h;
    uint8_t *rgb; /* planar: 3 x h x w, as nnl_image_save_png takes */
} nnl_canvas;

int nnl_canvas_init(nnl_canvas *c, int w, int h, uint32_t background);
void nnl_canvas_free(nnl_canvas *c);
void nnl_canvas_pixel(nnl_canvas *c, int x, int y, uint32_t rgb);
void nnl_canvas_rect(nnl_canvas *c, int x, int y, int w, int h, uint32_t rgb);
void nnl_canvas_frame(nnl_canvas *c, int x, int y, int w, int h, int thick, uint32_t rgb);
void nnl_canvas_line(nnl_canvas *c, int x0, int y0, int x1, int y1, uint32_t rgb);
/* Text in a 5x7 font (ASCII 32..126), scaled by `scale`; returns the width drawn. */
int nnl_canvas_text(nnl_canvas *c, int x, int y, const char *s, int scale, uint32_t rgb);
/* Draws a c x h x w image at (x, y), each pixel as a zoom x zoom block. */
void nnl_canvas_image(nnl_canvas *cv, int x, int y, const uint8_t *img, int c, int h, int w, int zoom);
int nnl_canvas_save(const nnl_canvas *c, const char *path, int flags);

/* A line chart: series of (x, y) points with names, y range [ymin, ymax]. */
typedef struct nnl_series { const char *name; const double *x, *y; int n; uint32_t rgb; } nnl_series;
int nnl_plot_lines(const char *path, const char *title, const char *xlabel, const nnl_series *s, int ns,
                   double ymin, double ymax);

#endif

using ClipSharp.Imaging;
using SkiaSharp;

namespace ClipSharp.Tests.Imaging;

/// <summary>Decoding of every supported format and Pillow mode, using images built inside the tests.</summary>
public class DecoderFormatTests
{
    static byte[] Pattern(int width, int height, int channels, int seed)
    {
        var rnd = new Random(seed);
        var px = new byte[width * height * channels];
        rnd.NextBytes(px);
        return px;
    }

    static byte[][] Rows(byte[] px, int rowBytes) =>
        Enumerable.Range(0, px.Length / rowBytes).Select(r => px.AsSpan(r * rowBytes, rowBytes).ToArray()).ToArray();

    static byte[] SkiaEncode(int width, int height, byte[] rgba, SKEncodedImageFormat format, SKAlphaType alpha)
    {
        using var bmp = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, alpha));
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bmp.GetPixels(), rgba.Length);
        using var data = bmp.Encode(format, 100);
        Assert.NotNull(data);
        return data.ToArray();
    }

    [Fact]
    public void WebpLosslessOpaqueDecodesAsRgb()
    {
        var rgba = Pattern(23, 17, 4, 1);
        for (int i = 3; i < rgba.Length; i += 4) rgba[i] = 255;
        var webp = SkiaEncode(23, 17, rgba, SKEncodedImageFormat.Webp, SKAlphaType.Opaque);
        var img = ImageDecoder.Decode(webp, "t.webp");
        Assert.Equal(ImageMode.Rgb, img.Mode);
        Assert.Equal((23, 17), (img.Width, img.Height));
        var expected = new byte[23 * 17 * 3];
        for (int i = 0; i < 23 * 17; i++) { expected[3 * i] = rgba[4 * i]; expected[3 * i + 1] = rgba[4 * i + 1]; expected[3 * i + 2] = rgba[4 * i + 2]; }
        Assert.Equal(expected, img.Pixels.ToArray());
    }

    [Fact]
    public void WebpWithAlphaDecodesAsRgbaUnpremultiplied()
    {
        var rgba = Pattern(19, 11, 4, 2);
        for (int i = 3; i < rgba.Length; i += 4) rgba[i] = 255; // opaque RGB is exactly reproducible
        rgba[3] = 0; rgba[7] = 128;
        var webp = SkiaEncode(19, 11, rgba, SKEncodedImageFormat.Webp, SKAlphaType.Unpremul);
        var img = ImageDecoder.Decode(webp, "a.webp");
        Assert.Equal(ImageMode.Rgba, img.Mode);
        Assert.Equal(0, img.Pixels[3]);
        Assert.Equal(128, img.Pixels[7]);
        Assert.Equal(rgba.AsSpan(8).ToArray(), img.Pixels[8..].ToArray());
    }

    [Fact]
    public void JpegGreyscaleDecodesAsL()
    {
        var rgba = new byte[16 * 16 * 4];
        for (int i = 0; i < 256; i++) { rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = (byte)i; rgba[4 * i + 3] = 255; }
        using var bmp = new SKBitmap(new SKImageInfo(16, 16, SKColorType.Gray8, SKAlphaType.Opaque));
        var grey = new byte[256];
        for (int i = 0; i < 256; i++) grey[i] = (byte)i;
        System.Runtime.InteropServices.Marshal.Copy(grey, 0, bmp.GetPixels(), 256);
        using var data = bmp.Encode(SKEncodedImageFormat.Jpeg, 95);
        var img = ImageDecoder.Decode(data.ToArray(), "g.jpg");
        Assert.Equal(ImageMode.L, img.Mode);
        Assert.Equal(256, img.Pixels.Length);
    }

    [Fact]
    public void BilevelPngDecodesAsMode1AndResizesWithNearest()
    {
        // 1-bit greyscale, 10x6; packed MSB first.
        int w = 10, h = 6;
        var bits = new bool[w * h];
        for (int i = 0; i < bits.Length; i++) bits[i] = (i * 7 % 3) == 0;
        var rows = new byte[h][];
        for (int y = 0; y < h; y++)
        {
            rows[y] = new byte[(w + 7) / 8];
            for (int x = 0; x < w; x++) if (bits[y * w + x]) rows[y][x / 8] |= (byte)(0x80 >> (x % 8));
        }
        var img = ImageDecoder.Decode(TestImageWriters.Png(w, h, 1, 0, rows), "bits.png");
        Assert.Equal(ImageMode.Bilevel, img.Mode);
        Assert.Equal(bits.Select(b => b ? (byte)255 : (byte)0).ToArray(), img.Pixels.ToArray());

        var resized = PillowResize.Resize(img, 4, 3);
        Assert.Equal(ImageMode.Bilevel, resized.Mode);
        var xs = PillowResize.NearestIndices(w, 4);
        var ys = PillowResize.NearestIndices(h, 3);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                Assert.Equal(img.Pixels[ys[y] * w + xs[x]], resized.Pixels[y * 4 + x]);
        Assert.All(resized.Pixels.ToArray(), v => Assert.True(v is 0 or 255));
    }

    [Fact]
    public void GreyAlphaPngDecodesAsLaAndResizesPremultiplied()
    {
        int w = 8, h = 8;
        var px = Pattern(w, h, 2, 3);
        for (int i = 1; i < px.Length; i += 8) px[i] = 0; // some fully transparent pixels with non-zero grey
        var img = ImageDecoder.Decode(TestImageWriters.Png(w, h, 8, 4, Rows(px, w * 2)), "la.png");
        Assert.Equal(ImageMode.La, img.Mode);
        Assert.Equal(px, img.Pixels.ToArray());

        // LA resizes exactly like RGBA with R = G = B = L.
        var rgba = new byte[w * h * 4];
        for (int i = 0; i < w * h; i++) { rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = px[2 * i]; rgba[4 * i + 3] = px[2 * i + 1]; }
        var la = PillowResize.Resize(img, 5, 3);
        var asRgba = PillowResize.Resize(DecodedImage.FromPixels(w, h, ImageMode.Rgba, rgba), 5, 3);
        Assert.Equal(asRgba.ToRgb(), la.ToRgb());
    }

    [Fact]
    public void PalettePngWithTransparencyStaysPaletteAndKeepsColours()
    {
        int w = 6, h = 4;
        byte[] palette = [10, 20, 30, 200, 100, 50, 0, 255, 0, 90, 90, 250];
        byte[] trns = [0, 128]; // entry 0 fully transparent, entry 1 half
        var idx = Enumerable.Range(0, w * h).Select(i => (byte)(i % 4)).ToArray();
        var img = ImageDecoder.Decode(TestImageWriters.Png(w, h, 8, 3, Rows(idx, w), palette, trns), "p.png");
        Assert.Equal(ImageMode.P, img.Mode);
        Assert.Equal(DecodedImage.FromPalette(w, h, idx, palette).Pixels.ToArray(), img.Pixels.ToArray());
    }

    [Fact]
    public void RgbAndGreyPngWithTrnsKeepTheirModeAndColours()
    {
        // A tRNS colour key makes Skia report alpha 0 for matching pixels; Pillow keeps mode RGB / L and the stored colour.
        int w = 4, h = 2;
        byte[] rgb = [1, 2, 3, 50, 60, 70, 1, 2, 3, 9, 9, 9, 200, 100, 0, 1, 2, 3, 7, 7, 7, 255, 255, 255];
        var img = ImageDecoder.Decode(TestImageWriters.Png(w, h, 8, 2, Rows(rgb, w * 3), trns: [0, 1, 0, 2, 0, 3]), "key.png");
        Assert.Equal(ImageMode.Rgb, img.Mode);
        Assert.Equal(rgb, img.Pixels.ToArray());

        byte[] grey = [5, 6, 5, 7, 8, 5, 9, 10];
        var g = ImageDecoder.Decode(TestImageWriters.Png(w, h, 8, 0, Rows(grey, w), trns: [0, 5]), "key-grey.png");
        Assert.Equal(ImageMode.L, g.Mode);
        Assert.Equal(grey, g.Pixels.ToArray());
    }

    [Fact]
    public void Png16BitKeepsTheMostSignificantByte()
    {
        int w = 3, h = 2;
        // Samples chosen so that rounding 16 -> 8 bits would differ from taking the high byte.
        ushort[] samples = [0x12FF, 0x1280, 0xFEFF, 0x0080, 0x7FFF, 0x8081, 0x00FF, 0x0101, 0xABCD, 0x5580, 0x1234, 0xFFFF, 0x0000, 0x4080, 0x90F0, 0x2222, 0x33CC, 0x44AA];
        var rows = new byte[h][];
        for (int y = 0; y < h; y++)
        {
            rows[y] = new byte[w * 6];
            for (int i = 0; i < w * 3; i++)
            {
                rows[y][2 * i] = (byte)(samples[y * w * 3 + i] >> 8);
                rows[y][2 * i + 1] = (byte)samples[y * w * 3 + i];
            }
        }
        var img = ImageDecoder.Decode(TestImageWriters.Png(w, h, 16, 2, rows), "deep.png");
        Assert.Equal(ImageMode.Rgb, img.Mode);
        Assert.Equal(samples.Select(s => (byte)(s >> 8)).ToArray(), img.Pixels.ToArray());
    }

    [Fact]
    public void GifWithColourPaletteDecodesAsPalette()
    {
        int w = 13, h = 9;
        byte[] palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 40, 50, 60];
        var idx = Enumerable.Range(0, w * h).Select(i => (byte)(i * 5 % 4)).ToArray();
        var img = ImageDecoder.Decode(TestImageWriters.Gif(w, h, palette, idx), "c.gif");
        Assert.Equal(ImageMode.P, img.Mode);
        Assert.Equal(DecodedImage.FromPalette(w, h, idx, palette).Pixels.ToArray(), img.Pixels.ToArray());
    }

    [Fact]
    public void GifWithIdentityGreyPaletteDecodesAsL()
    {
        int w = 20, h = 15;
        var palette = new byte[768];
        for (int i = 0; i < 256; i++) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = (byte)i;
        var idx = Enumerable.Range(0, w * h).Select(i => (byte)(i * 37 % 256)).ToArray();
        var img = ImageDecoder.Decode(TestImageWriters.Gif(w, h, palette, idx), "g.gif");
        Assert.Equal(ImageMode.L, img.Mode);
        Assert.Equal(idx, img.Pixels.ToArray());
    }

    [Fact]
    public void GifTransparentPixelsShowTheirPaletteColourLikePillowConvertRgb()
    {
        int w = 7, h = 5;
        byte[] palette = [255, 0, 0, 12, 34, 56, 0, 0, 255];
        var idx = Enumerable.Range(0, w * h).Select(i => (byte)(i % 3)).ToArray();
        var img = ImageDecoder.Decode(TestImageWriters.Gif(w, h, palette, idx, transparentIndex: 1), "t.gif");
        Assert.Equal(ImageMode.P, img.Mode);
        Assert.Equal(DecodedImage.FromPalette(w, h, idx, palette).Pixels.ToArray(), img.Pixels.ToArray());
    }

    [Fact]
    public void Bmp24DecodesAsRgb()
    {
        int w = 5, h = 3;
        var rgb = Pattern(w, h, 3, 4);
        var bgrRows = Rows(rgb, w * 3).Select(r => { var o = (byte[])r.Clone(); for (int i = 0; i < o.Length; i += 3) (o[i], o[i + 2]) = (o[i + 2], o[i]); return o; }).ToArray();
        var img = ImageDecoder.Decode(TestImageWriters.Bmp(w, h, 24, bgrRows), "c.bmp");
        Assert.Equal(ImageMode.Rgb, img.Mode);
        Assert.Equal(rgb, img.Pixels.ToArray());
    }

    [Fact]
    public void Bmp8WithColourPaletteIsPaletteAndWithGreyRampIsL()
    {
        int w = 6, h = 4;
        var idx = Enumerable.Range(0, w * h).Select(i => (byte)(i % 3)).ToArray();
        byte[] colours = [9, 8, 7, 200, 10, 10, 1, 2, 250];
        var p = ImageDecoder.Decode(TestImageWriters.Bmp(w, h, 8, Rows(idx, w), colours), "p.bmp");
        Assert.Equal(ImageMode.P, p.Mode);
        Assert.Equal(DecodedImage.FromPalette(w, h, idx, colours).Pixels.ToArray(), p.Pixels.ToArray());

        var ramp = new byte[768];
        for (int i = 0; i < 256; i++) ramp[3 * i] = ramp[3 * i + 1] = ramp[3 * i + 2] = (byte)i;
        var idx2 = Enumerable.Range(0, w * h).Select(i => (byte)(i * 11)).ToArray();
        var l = ImageDecoder.Decode(TestImageWriters.Bmp(w, h, 8, Rows(idx2, w), ramp), "l.bmp");
        Assert.Equal(ImageMode.L, l.Mode);
        Assert.Equal(idx2, l.Pixels.ToArray());
    }

    [Fact]
    public void Bmp1BitBlackWhiteIsBilevel()
    {
        int w = 9, h = 2;
        var rows = new[] { new byte[] { 0b1010_0000, 0b1000_0000 }, new byte[] { 0b0101_1111, 0 } };
        var img = ImageDecoder.Decode(TestImageWriters.Bmp(w, h, 1, rows, [0, 0, 0, 255, 255, 255]), "b.bmp");
        Assert.Equal(ImageMode.Bilevel, img.Mode);
        byte[] expected = [255, 0, 255, 0, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255, 255, 255, 0];
        Assert.Equal(expected, img.Pixels.ToArray());
    }
}

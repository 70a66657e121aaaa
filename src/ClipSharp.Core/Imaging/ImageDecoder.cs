using System.Buffers.Binary;
using SkiaSharp;

namespace ClipSharp.Imaging;

/// <summary>
/// Decodes JPEG, PNG, WebP, GIF (first frame) and BMP files with SkiaSharp into a <see cref="DecodedImage"/>
/// that carries the mode Pillow would give the same file. Pixels are decoded without colour management
/// and without applying EXIF orientation, as Pillow's <c>Image.open</c> does. Safe to call concurrently.
/// </summary>
public static class ImageDecoder
{
    /// <summary>
    /// Default decompression-bomb limit in pixels: Pillow's default <c>MAX_IMAGE_PIXELS</c>
    /// (1024 · 1024 · 1024 / 4 / 3 = 89,478,485).
    /// </summary>
    public const long DefaultMaxImagePixels = 1024L * 1024 * 1024 / 4 / 3;

    /// <summary>Reads and decodes an image file.</summary>
    /// <param name="path">The file to read; its path is used in error messages.</param>
    /// <param name="maxImagePixels">Images with more pixels than this are refused before their pixels are decoded.</param>
    /// <returns>The decoded image.</returns>
    /// <exception cref="ImageDecodeException">The file is empty, truncated, corrupt, of an unsupported format or too large.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static DecodedImage Decode(string path, long maxImagePixels = DefaultMaxImagePixels)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Decode(File.ReadAllBytes(path), path, maxImagePixels);
    }

    /// <summary>Decodes an encoded image held in memory.</summary>
    /// <param name="data">The encoded file contents.</param>
    /// <param name="nameForErrors">A file name or other label used in error messages.</param>
    /// <param name="maxImagePixels">Images with more pixels than this are refused before their pixels are decoded.</param>
    /// <returns>The decoded image.</returns>
    /// <exception cref="ImageDecodeException">The data is empty, truncated, corrupt, of an unsupported format or too large.</exception>
    public static DecodedImage Decode(byte[] data, string nameForErrors, long maxImagePixels = DefaultMaxImagePixels)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(nameForErrors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxImagePixels);
        if (data.Length == 0)
            throw new ImageDecodeException(nameForErrors, "the file is empty");

        // Check the declared size from the header ourselves first, so that a bomb is refused even if
        // the decoder would need more of the file to report it.
        var header = HeaderInfo.Sniff(data);
        if (header.Format == SKEncodedImageFormat.Png && !header.Valid)
            throw new ImageDecodeException(nameForErrors, "corrupt PNG header (no valid IHDR chunk)");
        if (header.Width > 0 && header.Height > 0 && header.Width * header.Height > maxImagePixels)
            throw new ImageTooLargeException(nameForErrors, header.Width, header.Height, maxImagePixels);

        // The codec takes ownership of the stream.
        using var codec = SKCodec.Create(new SKMemoryStream(data), out var createResult);
        if (codec is null)
        {
            string why = header.Format is null
                ? "unknown or unsupported image format (expected JPEG, PNG, WebP, GIF or BMP)"
                : $"corrupt or truncated {header.Format.Value.ToString().ToUpperInvariant()} data ({createResult})";
            throw new ImageDecodeException(nameForErrors, why);
        }

        var info = codec.Info;
        long w = info.Width, h = info.Height;
        if (w <= 0 || h <= 0)
            throw new ImageDecodeException(nameForErrors, $"invalid image size {w}x{h}");
        if (w * h > maxImagePixels)
            throw new ImageTooLargeException(nameForErrors, w, h, maxImagePixels);

        var format = codec.EncodedFormat;
        ImageMode mode = format switch
        {
            SKEncodedImageFormat.Png => header.PngMode(),
            SKEncodedImageFormat.Gif => header.GifMode(),
            SKEncodedImageFormat.Bmp => header.BmpMode(),
            SKEncodedImageFormat.Jpeg => info.ColorType == SKColorType.Gray8 ? ImageMode.L : ImageMode.Rgb,
            SKEncodedImageFormat.Webp => info.AlphaType == SKAlphaType.Opaque ? ImageMode.Rgb : ImageMode.Rgba,
            _ => throw new ImageDecodeException(nameForErrors, $"unsupported image format {format} (expected JPEG, PNG, WebP, GIF or BMP)"),
        };

        int width = (int)w, height = (int)h;
        byte[] rgba = DecodeRgba8(codec, width, height, nameForErrors);

        if (format == SKEncodedImageFormat.Gif && header.GifTransparentColor is { } tc)
            RestoreGifTransparentColour(rgba, tc);

        return new DecodedImage(width, height, mode, FromRgba(rgba, mode), takeOwnership: true);
    }

    static byte[] DecodeRgba8(SKCodec codec, int width, int height, string name)
    {
        // Unpremultiplied, with no colour space: Skia neither converts colours nor scales RGB by alpha.
        // For 16-bit PNGs Skia keeps the most significant byte of each sample, as Pillow does (tested).
        var dst = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var buffer = new byte[checked(width * height * 4)];
        Run(codec, dst, buffer, name);
        return buffer;
    }

    static unsafe void Run(SKCodec codec, SKImageInfo dst, byte[] buffer, string name)
    {
        SKCodecResult result;
        fixed (byte* p = buffer)
        {
            result = codec.GetPixels(dst, (IntPtr)p);
        }
        switch (result)
        {
            case SKCodecResult.Success:
                return;
            case SKCodecResult.IncompleteInput:
                throw new ImageDecodeException(name, "the image data is truncated");
            case SKCodecResult.ErrorInInput:
                throw new ImageDecodeException(name, "the image data is corrupt");
            default:
                throw new ImageDecodeException(name, $"the decoder failed ({result})");
        }
    }

    static void RestoreGifTransparentColour(byte[] rgba, (byte R, byte G, byte B) colour)
    {
        // Pillow keeps the transparent index and convert("RGB") shows its palette colour; Skia leaves those pixels blank.
        for (int i = 0; i < rgba.Length; i += 4)
        {
            if (rgba[i + 3] != 0) continue;
            rgba[i] = colour.R;
            rgba[i + 1] = colour.G;
            rgba[i + 2] = colour.B;
        }
    }

    static byte[] FromRgba(byte[] rgba, ImageMode mode)
    {
        int n = rgba.Length / 4;
        switch (mode)
        {
            case ImageMode.Rgba:
                return rgba;
            case ImageMode.Rgb:
            case ImageMode.P:
            {
                var o = new byte[n * 3];
                for (int i = 0; i < n; i++)
                {
                    o[3 * i] = rgba[4 * i];
                    o[3 * i + 1] = rgba[4 * i + 1];
                    o[3 * i + 2] = rgba[4 * i + 2];
                }
                return o;
            }
            case ImageMode.L:
            {
                var o = new byte[n];
                for (int i = 0; i < n; i++) o[i] = rgba[4 * i];
                return o;
            }
            case ImageMode.Bilevel:
            {
                var o = new byte[n];
                for (int i = 0; i < n; i++) o[i] = rgba[4 * i] != 0 ? (byte)255 : (byte)0;
                return o;
            }
            case ImageMode.La:
            {
                var o = new byte[n * 2];
                for (int i = 0; i < n; i++)
                {
                    o[2 * i] = rgba[4 * i];
                    o[2 * i + 1] = rgba[4 * i + 3];
                }
                return o;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(mode));
        }
    }

    /// <summary>What the file header says, read without decoding: format, declared size and the facts that decide Pillow's mode.</summary>
    sealed class HeaderInfo
    {
        public SKEncodedImageFormat? Format { get; private init; }
        public bool Valid { get; private init; }
        public long Width { get; private init; }
        public long Height { get; private init; }
        public int BitDepth { get; private init; }
        int PngColourType { get; init; }
        bool GifNeedsPalette { get; init; }
        public (byte R, byte G, byte B)? GifTransparentColor { get; private init; }
        ImageMode? BmpPaletteMode { get; init; }
        bool BmpHasAlpha { get; init; }

        public static HeaderInfo Sniff(byte[] d)
        {
            ReadOnlySpan<byte> png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
            if (d.AsSpan().StartsWith(png)) return SniffPng(d);
            if (d.Length >= 6 && (d.AsSpan(0, 6).SequenceEqual("GIF87a"u8) || d.AsSpan(0, 6).SequenceEqual("GIF89a"u8))) return SniffGif(d);
            if (d.Length >= 2 && d[0] == 'B' && d[1] == 'M') return SniffBmp(d);
            if (d.Length >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return new HeaderInfo { Format = SKEncodedImageFormat.Jpeg };
            if (d.Length >= 12 && d.AsSpan(0, 4).SequenceEqual("RIFF"u8) && d.AsSpan(8, 4).SequenceEqual("WEBP"u8)) return new HeaderInfo { Format = SKEncodedImageFormat.Webp };
            return new HeaderInfo();
        }

        static HeaderInfo SniffPng(byte[] d)
        {
            // Signature, then the IHDR chunk: length (13), type, width, height, bit depth, colour type.
            if (d.Length < 8 + 8 + 13 || !d.AsSpan(12, 4).SequenceEqual("IHDR"u8))
                return new HeaderInfo { Format = SKEncodedImageFormat.Png };
            return new HeaderInfo
            {
                Format = SKEncodedImageFormat.Png,
                Valid = true,
                Width = BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(16)),
                Height = BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(20)),
                BitDepth = d[24],
                PngColourType = d[25],
            };
        }

        public ImageMode PngMode() => PngColourType switch
        {
            // Grayscale: 1-bit is Pillow's bilevel mode; 2, 4 and 8 bits are L (16 bits would be "I" in Pillow, see the report).
            0 => BitDepth == 1 ? ImageMode.Bilevel : ImageMode.L,
            2 => ImageMode.Rgb,
            // Palette images stay "P" even with a tRNS chunk; convert("RGB") then ignores the transparency.
            3 => ImageMode.P,
            4 => ImageMode.La,
            6 => ImageMode.Rgba,
            _ => ImageMode.Rgba,
        };

        static HeaderInfo SniffGif(byte[] d)
        {
            if (d.Length < 13) return new HeaderInfo { Format = SKEncodedImageFormat.Gif };
            long w = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(6));
            long h = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(8));
            int pos = 13;
            byte[]? global = null;
            if ((d[10] & 0x80) != 0)
            {
                int len = 3 << ((d[10] & 7) + 1);
                if (pos + len > d.Length) return new HeaderInfo { Format = SKEncodedImageFormat.Gif, Width = w, Height = h };
                global = d.AsSpan(pos, len).ToArray();
                pos += len;
            }
            int? transparent = null;
            byte[]? frame = global;
            bool haveFrame = false;
            while (pos < d.Length && !haveFrame)
            {
                byte b = d[pos++];
                if (b == 0x21 && pos < d.Length)
                {
                    byte label = d[pos++];
                    if (label == 0xF9 && pos + 5 <= d.Length && d[pos] >= 4)
                    {
                        transparent = (d[pos + 1] & 1) != 0 ? d[pos + 4] : null;
                    }
                    // Skip the data sub-blocks.
                    while (pos < d.Length && d[pos] != 0) pos += d[pos] + 1;
                    pos++;
                }
                else if (b == 0x2C && pos + 9 <= d.Length)
                {
                    byte flags = d[pos + 8];
                    if ((flags & 0x80) != 0)
                    {
                        int len = 3 << ((flags & 7) + 1);
                        frame = pos + 9 + len <= d.Length ? d.AsSpan(pos + 9, len).ToArray() : null;
                    }
                    haveFrame = true;
                }
                else break;
            }
            // Pillow treats a palette that is exactly the identity grey ramp as no palette at all: mode L.
            bool needsPalette = frame is not null && !IsIdentityGreyRamp(frame);
            (byte, byte, byte)? tc = null;
            if (transparent is int t)
            {
                if (needsPalette) tc = 3 * t + 2 < frame!.Length ? (frame[3 * t], frame[3 * t + 1], frame[3 * t + 2]) : ((byte)0, (byte)0, (byte)0);
                else tc = ((byte)t, (byte)t, (byte)t);
            }
            return new HeaderInfo { Format = SKEncodedImageFormat.Gif, Valid = true, Width = w, Height = h, GifNeedsPalette = needsPalette, GifTransparentColor = tc };
        }

        static bool IsIdentityGreyRamp(byte[] p)
        {
            for (int i = 0; i + 2 < p.Length; i += 3)
                if (p[i] != i / 3 || p[i + 1] != i / 3 || p[i + 2] != i / 3) return false;
            return true;
        }

        public ImageMode GifMode() => GifNeedsPalette ? ImageMode.P : ImageMode.L;

        static HeaderInfo SniffBmp(byte[] d)
        {
            if (d.Length < 14 + 12) return new HeaderInfo { Format = SKEncodedImageFormat.Bmp };
            int headerSize = BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(14));
            long w, h;
            int bits, compression = 0, colours = 0, entrySize;
            if (headerSize == 12)
            {
                w = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(18));
                h = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(20));
                bits = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(24));
                entrySize = 3;
            }
            else if (headerSize >= 40 && d.Length >= 14 + 40)
            {
                w = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(18)));
                h = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(22)));
                bits = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(28));
                compression = BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(30));
                colours = BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(46));
                entrySize = 4;
            }
            else return new HeaderInfo { Format = SKEncodedImageFormat.Bmp };

            ImageMode? paletteMode = null;
            bool alpha = false;
            if (bits is >= 1 and <= 8)
            {
                if (colours <= 0 || colours > (1 << bits)) colours = 1 << bits;
                int start = 14 + headerSize;
                // BI_BITFIELDS with a 40-byte header stores three masks before the palette.
                if (headerSize == 40 && compression == 3) start += 12;
                bool grey = start + colours * entrySize <= d.Length;
                for (int i = 0; grey && i < colours; i++)
                {
                    int expected = colours == 2 ? (i == 0 ? 0 : 255) : i;
                    int o = start + i * entrySize;
                    grey = d[o] == expected && d[o + 1] == expected && d[o + 2] == expected;
                }
                // Pillow drops a pure grey palette: black/white gives mode "1", a grey ramp mode "L".
                paletteMode = grey ? (colours == 2 ? ImageMode.Bilevel : ImageMode.L) : ImageMode.P;
            }
            else if (bits == 32 && compression == 3)
            {
                // BI_BITFIELDS: Pillow reads an alpha channel only when an alpha mask is present (or all masks are zero).
                uint aMask = 0, rMask = 0, gMask = 0, bMask = 0;
                int m = 14 + 40;
                if (d.Length >= m + 12) { rMask = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(m)); gMask = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(m + 4)); bMask = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(m + 8)); }
                if (headerSize >= 56 && d.Length >= m + 16) aMask = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(m + 12));
                alpha = aMask != 0 || (rMask == 0 && gMask == 0 && bMask == 0);
            }
            return new HeaderInfo { Format = SKEncodedImageFormat.Bmp, Valid = true, Width = w, Height = h, BitDepth = bits, BmpPaletteMode = paletteMode, BmpHasAlpha = alpha };
        }

        public ImageMode BmpMode() => BmpPaletteMode ?? (BmpHasAlpha ? ImageMode.Rgba : ImageMode.Rgb);
    }
}

using HarfBuzzSharp;
using SkiaSharp;

namespace ClipSharp.Data.Demo;

/// <summary>
/// Writes corpus images in one normal form: an opaque RGB PNG of a fixed square size, the picture scaled to fit
/// (keeping its aspect ratio), centred on white. Files are written under a temporary name and then renamed, so a
/// file that exists is complete.
/// </summary>
internal static class CorpusImages
{
    private static readonly SKSamplingOptions Sampling = new(SKFilterMode.Linear, SKMipmapMode.Linear);

    /// <summary>
    /// Serialises Skia work across threads. Decoding and encoding on two threads at once crashed SkiaSharp 3.119
    /// here now and then (segfaults, spurious allocation failures), so the builder overlaps only the work outside
    /// Skia (rsvg-convert processes, file I/O, shaping) and keeps Skia calls one at a time.
    /// </summary>
    internal static readonly Lock SkiaLock = new();

    /// <summary>Largest image decoded (pixels); a few OpenClipArt PNGs are posters of hundreds of megapixels.</summary>
    public const long MaxPixels = 16_000_000;

    /// <summary>Decodes an image file; null when it cannot be read or decoded, or is larger than <see cref="MaxPixels"/>.</summary>
    public static SKImage? TryDecode(string path)
    {
        try
        {
            using var data = SKData.Create(path);
            if (data is null) return null;
            using var codec = SKCodec.Create(data);
            if (codec is null || codec.Info.Width == 0 || codec.Info.Height == 0) return null;
            if ((long)codec.Info.Width * codec.Info.Height > MaxPixels) return null;
            var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
            var bitmap = new SKBitmap(info);
            var result = codec.GetPixels(info, bitmap.GetPixels());
            if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput)) { bitmap.Dispose(); return null; }
            bitmap.SetImmutable();
            // The image takes over the pixels; the bitmap wrapper can go.
            var image = SKImage.FromBitmap(bitmap);
            bitmap.Dispose();
            return image;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        catch (Exception e) when (e.Message.Contains("allocate", StringComparison.OrdinalIgnoreCase)) { return null; }
    }

    /// <summary>Decodes <paramref name="source"/> and writes it normalised to <paramref name="dest"/>; false when undecodable.</summary>
    public static bool TryNormalizeFile(string source, string dest, int size, int margin = 0)
    {
        using var _ = SkiaLock.EnterScope();
        using var image = TryDecode(source);
        if (image is null) return false;
        WriteFitted(image, new SKRect(0, 0, image.Width, image.Height), dest, size, margin);
        return true;
    }

    /// <summary>Scales the <paramref name="crop"/> region of an image to fit a <paramref name="size"/>² white square less <paramref name="margin"/> and writes it as PNG.</summary>
    public static void WriteFitted(SKImage image, SKRect crop, string dest, int size, int margin)
    {
        using var _ = SkiaLock.EnterScope();
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var surface = SKSurface.Create(info) ?? throw new InvalidOperationException("could not create a Skia surface");
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        float inner = size - 2f * margin;
        float scale = Math.Min(inner / crop.Width, inner / crop.Height);
        float w = crop.Width * scale, h = crop.Height * scale;
        var target = SKRect.Create((size - w) / 2f, (size - h) / 2f, w, h);
        using var paint = new SKPaint { IsAntialias = true };
        canvas.DrawImage(image, crop, target, Sampling, paint);
        canvas.Flush();
        using var snapshot = surface.Snapshot();
        using var png = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        WriteAtomic(dest, png.AsSpan());
    }

    /// <summary>Writes bytes to a temporary file beside <paramref name="dest"/> and renames it into place.</summary>
    public static void WriteAtomic(string dest, ReadOnlySpan<byte> bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
        var tmp = dest + $".tmp{Environment.CurrentManagedThreadId}";
        using (var f = File.Create(tmp)) f.Write(bytes);
        File.Move(tmp, dest, true);
    }

    /// <summary>Writes a grey-scale image (one byte per pixel, 0 = black) as an RGB PNG of the same size.</summary>
    public static void WriteGray(ReadOnlySpan<byte> pixels, int width, int height, string dest, bool invert = false)
    {
        using var _ = SkiaLock.EnterScope();
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var span = bitmap.GetPixelSpan();
        for (int i = 0; i < width * height; i++)
        {
            byte v = invert ? (byte)(255 - pixels[i]) : pixels[i];
            span[4 * i] = v; span[4 * i + 1] = v; span[4 * i + 2] = v; span[4 * i + 3] = 255;
        }
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        WriteAtomic(dest, png.AsSpan());
    }

    /// <summary>The smallest rectangle holding every pixel that is not (nearly) white; null for a blank image.</summary>
    public static SKRectI? InkBounds(SKBitmap bitmap, byte threshold = 250)
    {
        int minX = int.MaxValue, minY = int.MaxValue, maxX = -1, maxY = -1;
        for (int y = 0; y < bitmap.Height; y++)
        for (int x = 0; x < bitmap.Width; x++)
        {
            var c = bitmap.GetPixel(x, y);
            if (c.Red >= threshold && c.Green >= threshold && c.Blue >= threshold) continue;
            if (x < minX) minX = x;
            if (x > maxX) maxX = x;
            if (y < minY) minY = y;
            if (y > maxY) maxY = y;
        }
        return maxX < 0 ? null : new SKRectI(minX, minY, maxX + 1, maxY + 1);
    }
}

/// <summary>
/// Renders emoji sequences with one font: HarfBuzz shapes the sequence (so ZWJ sequences, flags and keycaps become
/// their ligature glyph), Skia draws the glyphs large on white, and the inked area is scaled into a square image.
/// </summary>
internal sealed class EmojiFontRenderer : IDisposable
{
    private const int Canvas = 320;
    private readonly SKTypeface _typeface;
    private readonly Blob _blob;
    private readonly Face _face;
    private readonly HarfBuzzSharp.Font _hbFont;
    private readonly float _size;

    /// <summary>Opens the font file; <paramref name="size"/> is the drawing size in pixels before scaling down.</summary>
    public EmojiFontRenderer(string fontPath, float size = 109)
    {
        _typeface = SKTypeface.FromFile(fontPath) ?? throw new ClipSharpException($"cannot load font {fontPath}");
        _blob = Blob.FromFile(fontPath);
        _face = new Face(_blob, 0);
        _hbFont = new HarfBuzzSharp.Font(_face);
        _size = size;
    }

    /// <summary>
    /// Renders <paramref name="text"/> into <paramref name="dest"/>; false (nothing written) when the font lacks a
    /// glyph or shapes the sequence into more than one visible glyph (i.e. it has no single picture for it).
    /// </summary>
    public bool TryRender(string text, string dest, int size, int margin)
    {
        using var buffer = new HarfBuzzSharp.Buffer();
        buffer.AddUtf16(text);
        buffer.GuessSegmentProperties();
        _hbFont.Shape(buffer);
        var infos = buffer.GlyphInfos;
        var positions = buffer.GlyphPositions;
        if (infos.Length == 0 || infos.Any(g => g.Codepoint == 0)) return false;
        if (positions.Count(p => p.XAdvance != 0) != 1) return false;

        using var _ = CorpusImages.SkiaLock.EnterScope();
        using var font = new SKFont(_typeface, _size);
        float scale = _size / _face.UnitsPerEm;
        using var builder = new SKTextBlobBuilder();
        var run = builder.AllocatePositionedRun(font, infos.Length);
        var glyphs = run.Glyphs;
        var points = run.Positions;
        float x = 0;
        for (int i = 0; i < infos.Length; i++)
        {
            glyphs[i] = (ushort)infos[i].Codepoint;
            points[i] = new SKPoint(x + positions[i].XOffset * scale, -positions[i].YOffset * scale);
            x += positions[i].XAdvance * scale;
        }
        using var blob = builder.Build();
        if (blob is null) return false;

        using var bitmap = new SKBitmap(new SKImageInfo(Canvas, Canvas, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { IsAntialias = true, Color = SKColors.Black })
        {
            canvas.Clear(SKColors.White);
            var metrics = font.Metrics;
            float baseline = (Canvas - (metrics.Descent - metrics.Ascent)) / 2f - metrics.Ascent;
            canvas.DrawText(blob, (Canvas - x) / 2f, baseline, paint);
        }
        var ink = CorpusImages.InkBounds(bitmap);
        if (ink is not { } r) return false;
        // Square crop around the ink so that the aspect ratio is kept and the picture is centred.
        int side = Math.Max(r.Width, r.Height);
        var crop = SKRect.Create(r.MidX - side / 2f, r.MidY - side / 2f, side, side);
        using var image = SKImage.FromBitmap(bitmap);
        CorpusImages.WriteFitted(image, crop, dest, size, margin);
        return true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _hbFont.Dispose();
        _face.Dispose();
        _blob.Dispose();
        _typeface.Dispose();
    }
}

/// <summary>Rasterises SVG files with <c>rsvg-convert</c> (from Debian's librsvg2-bin).</summary>
/// <param name="executable">Path of the <c>rsvg-convert</c> program.</param>
internal sealed class SvgRasterizer(string executable)
{
    /// <summary>The program used.</summary>
    public string Executable { get; } = executable;

    /// <summary>
    /// Finds a working <c>rsvg-convert</c>: the one unpacked from librsvg2-bin under <paramref name="unpackedRoot"/>,
    /// else one on PATH. Throws <see cref="DemoCorpusException"/> when neither runs.
    /// </summary>
    public static SvgRasterizer Locate(string? unpackedRoot)
    {
        var candidates = new List<string>();
        if (unpackedRoot is not null) candidates.Add(Path.Combine(unpackedRoot, "usr", "bin", "rsvg-convert"));
        candidates.Add("rsvg-convert");
        foreach (var c in candidates)
        {
            try
            {
                PackageCache.Run(c, ["--version"], null, "rsvg-convert");
                return new SvgRasterizer(c);
            }
            catch (DemoCorpusException) { }
        }
        throw new DemoCorpusException("rsvg-convert does not run here (its libraries cairo, pango and gdk-pixbuf are missing?): apt-get install librsvg2-bin");
    }

    /// <summary>
    /// Rasterises many SVGs to PNGs that fit a <paramref name="size"/>² square on white. Starting a process from .NET
    /// costs far more than from a shell, so each of <paramref name="workers"/> shells loops over its share of the
    /// list. A file that fails is simply not written (the caller counts it as unreadable).
    /// </summary>
    public void RasterizeBatch(IReadOnlyList<(string Svg, string Png)> jobs, int size, int workers)
    {
        if (jobs.Count == 0) return;
        PackageCache.RequireTool("bash", "--version", "bash is needed to run rsvg-convert over many files");
        workers = Math.Clamp(workers, 1, jobs.Count);
        var listDir = Path.Combine(Path.GetTempPath(), $"clipsharp-rsvg-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(listDir);
        try
        {
            const string script = "while IFS=$'\\t' read -r src dst; do \"$0\" -w \"$1\" -h \"$1\" -a -b white -o \"$dst\" \"$src\" 2>/dev/null || rm -f \"$dst\"; done < \"$2\"";
            var sizeText = size.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var tasks = new List<Task>();
            for (int w = 0; w < workers; w++)
            {
                var list = Path.Combine(listDir, $"{w}.tsv");
                var lines = jobs.Where((_, i) => i % workers == w).Select(j => j.Svg + "\t" + j.Png + "\n");
                File.WriteAllText(list, string.Concat(lines));
                foreach (var dir in jobs.Where((_, i) => i % workers == w).Select(j => Path.GetDirectoryName(j.Png)!).Distinct()) Directory.CreateDirectory(dir);
                tasks.Add(Task.Run(() => PackageCache.Run("bash", ["-c", script, Executable, sizeText, list], null, "rsvg-convert batch")));
            }
            Task.WaitAll(tasks);
        }
        finally { Directory.Delete(listDir, true); }
    }

    /// <summary>Rasterises an SVG to fit a <paramref name="size"/>² square on white, then writes the normal form; false on failure.</summary>
    public bool TryRasterize(string svg, string dest, int size, int margin = 0)
    {
        var tmp = dest + $".rsvg{Environment.CurrentManagedThreadId}.png";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            PackageCache.Run(Executable, ["-w", size.ToString(System.Globalization.CultureInfo.InvariantCulture), "-h", size.ToString(System.Globalization.CultureInfo.InvariantCulture), "-a", "-b", "white", "-o", tmp, svg], null, "rsvg-convert");
            return CorpusImages.TryNormalizeFile(tmp, dest, size, margin);
        }
        catch (DemoCorpusException) { return false; }
        finally { if (File.Exists(tmp)) File.Delete(tmp); }
    }
}

using SkiaSharp;

namespace ClipSharp.Server;

/// <summary>
/// Thumbnails made on request from the indexed files (never from anything else: the caller passes a file that
/// <see cref="ServedIndex.ContainedFile"/> approved) and kept in a least-recently-used cache bounded in bytes.
/// A JPEG is decoded at a reduced scale when the codec can; transparency is flattened on white; images are never
/// enlarged. The declared size is checked against the pixel limit before any pixel is decoded.
/// </summary>
internal sealed class Thumbnails(long capacityBytes, long maxImagePixels)
{
    readonly record struct Key(string Path, long Length, long Ticks, int Size);

    readonly Dictionary<Key, LinkedListNode<(Key Key, byte[] Jpeg)>> map = [];
    readonly LinkedList<(Key Key, byte[] Jpeg)> order = new();
    readonly object gate = new();
    long bytes;

    /// <summary>A JPEG of at most <paramref name="size"/> pixels on its longer side, and a tag that changes with the file.</summary>
    /// <exception cref="ApiError">The file is not a decodable image (422) or is larger than the pixel limit (413).</exception>
    public (byte[] Jpeg, string ETag) Get(string file, int size)
    {
        var info = new FileInfo(file);
        var key = new Key(file, info.Length, info.LastWriteTimeUtc.Ticks, size);
        string etag = $"\"{key.Length:x}-{key.Ticks:x}-{size}\"";
        lock (gate)
        {
            if (map.TryGetValue(key, out var node))
            {
                order.Remove(node);
                order.AddFirst(node);
                return (node.Value.Jpeg, etag);
            }
        }
        var jpeg = Make(file, size, maxImagePixels);
        lock (gate)
        {
            if (!map.ContainsKey(key) && jpeg.Length <= capacityBytes)
            {
                map[key] = order.AddFirst((key, jpeg));
                bytes += jpeg.Length;
                while (bytes > capacityBytes && order.Last is { } last)
                {
                    order.RemoveLast();
                    map.Remove(last.Value.Key);
                    bytes -= last.Value.Jpeg.Length;
                }
            }
        }
        return (jpeg, etag);
    }

    static byte[] Make(string file, int size, long maxPixels)
    {
        using var stream = File.OpenRead(file);
        using var codec = SKCodec.Create(stream, out _)
            ?? throw new ApiError(422, "the indexed file is not a decodable image");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0) throw new ApiError(422, "the indexed file has no pixels");
        if ((long)info.Width * info.Height > maxPixels)
            throw new ApiError(413, $"the indexed image is {info.Width}x{info.Height}, more than the {maxPixels:N0}-pixel limit");
        float scale = Math.Min(1f, size / (float)Math.Max(info.Width, info.Height));
        var scaled = codec.GetScaledDimensions(scale);
        var decodeInfo = new SKImageInfo(scaled.Width, scaled.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(decodeInfo);
        var result = codec.GetPixels(decodeInfo, bitmap.GetPixels());
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
            throw new ApiError(422, $"the indexed image cannot be decoded ({result})");
        int w = Math.Max(1, (int)MathF.Round(info.Width * scale)), h = Math.Max(1, (int)MathF.Round(info.Height * scale));
        using var surface = SKSurface.Create(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        surface.Canvas.Clear(SKColors.White);
        using (var image = SKImage.FromBitmap(bitmap))
            surface.Canvas.DrawImage(image, new SKRect(0, 0, w, h), new SKSamplingOptions(SKCubicResampler.Mitchell));
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Jpeg, 85);
        return data.ToArray();
    }
}

using SkiaSharp;

namespace ClipSharp.Tests.Training;

/// <summary>Coloured shapes on a grey background with captions such as "a red circle": 8 colours × 4 shapes = 32 pairs.</summary>
internal static class SyntheticShapes
{
    static readonly (string Name, SKColor Color)[] Colors =
    [
        ("red", new SKColor(220, 30, 30)), ("green", new SKColor(30, 180, 40)), ("blue", new SKColor(30, 60, 220)),
        ("yellow", new SKColor(240, 220, 20)), ("purple", new SKColor(140, 40, 170)), ("orange", new SKColor(250, 140, 20)),
        ("black", new SKColor(10, 10, 10)), ("white", new SKColor(250, 250, 250)),
    ];
    static readonly string[] Shapes = ["circle", "square", "triangle", "cross"];

    public static int Count => Colors.Length * Shapes.Length;

    public static string Caption(int i) => $"a {Colors[i % Colors.Length].Name} {Shapes[i / Colors.Length]}";

    /// <summary>PNG bytes of pair <paramref name="i"/> at <paramref name="size"/> px.</summary>
    public static byte[] Png(int i, int size = 48)
    {
        using var bmp = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using (var canvas = new SKCanvas(bmp))
        {
            canvas.Clear(new SKColor(128, 128, 128));
            using var paint = new SKPaint { Color = Colors[i % Colors.Length].Color, IsAntialias = false, Style = SKPaintStyle.Fill };
            float s = size, c = s / 2, r = s * 0.3f;
            switch (Shapes[i / Colors.Length])
            {
                case "circle": canvas.DrawCircle(c, c, r, paint); break;
                case "square": canvas.DrawRect(c - r, c - r, 2 * r, 2 * r, paint); break;
                case "triangle":
                    using (var path = new SKPath())
                    {
                        path.MoveTo(c, c - r); path.LineTo(c + r, c + r); path.LineTo(c - r, c + r); path.Close();
                        canvas.DrawPath(path, paint);
                    }
                    break;
                default:
                    canvas.DrawRect(c - r, c - r / 3, 2 * r, 2 * r / 3, paint);
                    canvas.DrawRect(c - r / 3, c - r, 2 * r / 3, 2 * r, paint);
                    break;
            }
        }
        using var image = SKImage.FromBitmap(bmp);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}

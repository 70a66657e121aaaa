using System.Diagnostics;
using System.Globalization;
using ClipSharp.Hub;

namespace ClipSharp.Cli.Commands;

/// <summary>
/// Download progress on stderr: a line rewritten in place on a terminal (bytes, total, percentage, rate), and only a
/// start and an end line when stderr is a file or a pipe. Files that come from the cache print nothing.
/// </summary>
internal sealed class DownloadProgressPrinter(TextWriter output) : IProgress<DownloadProgress>
{
    readonly bool _live = ReferenceEquals(output, Console.Error) && !Console.IsErrorRedirected;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    string? _file;
    long _startBytes;
    TimeSpan _started, _lastDraw;

    public void Report(DownloadProgress p)
    {
        if (p.File != _file)
        {
            EndLine();
            _file = p.File;
            _startBytes = p.BytesDone;
            _started = _lastDraw = _clock.Elapsed;
            var resumed = p.BytesDone > 0 ? $", resuming at {Size(p.BytesDone)}" : "";
            if (!_live) output.WriteLine($"downloading {p.File} ({(p.TotalBytes is long t ? Size(t) : "size unknown")}{resumed})");
        }
        bool done = p.TotalBytes is long total && p.BytesDone >= total;
        if (_live && (done || _clock.Elapsed - _lastDraw > TimeSpan.FromMilliseconds(200)))
        {
            _lastDraw = _clock.Elapsed;
            double seconds = Math.Max(1e-3, (_clock.Elapsed - _started).TotalSeconds);
            string pct = p.TotalBytes is long t && t > 0 ? $" {100.0 * p.BytesDone / t,5:F1}%" : "";
            output.Write($"\r{p.File}: {Size(p.BytesDone)}{(p.TotalBytes is long tt ? " / " + Size(tt) : "")}{pct}  {Size((long)((p.BytesDone - _startBytes) / seconds))}/s   ");
        }
        if (done)
        {
            if (_live) output.WriteLine();
            else output.WriteLine($"downloaded {p.File}");
            _file = null;
        }
    }

    void EndLine()
    {
        if (_file is not null && _live) output.WriteLine();
    }

    internal static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };
}

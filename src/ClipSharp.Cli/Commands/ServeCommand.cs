using System.CommandLine;
using ClipSharp.Server;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip serve</c>: the search page and JSON API over one or more indexes (see docs/serve.md).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var index = new Option<string[]>("--index", "-i") { Description = "Index written by clip index (repeatable: several indexes, chosen on the page)", Required = true, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };
        var model = Common.ModelOption(required: false);
        model.Description = "Checkpoint for queries (default: the one each index was built with); must be the same model";
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var captions = new Option<string[]>("--captions") { Description = "CSV/TSV with image and caption columns (repeatable); NAME.captions.csv beside NAME.index.safetensors is read by itself" };
        var host = new Option<string>("--host") { Description = "Address to listen on (0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "Port (0: any free one)", DefaultValueFactory = _ => 8080 };
        var maxUpload = new Option<int>("--max-upload-mb") { Description = "Largest image upload in MiB", DefaultValueFactory = _ => 16 };
        var maxPixels = new Option<long>("--max-image-pixels") { Description = "Largest declared image size in pixels (decompression bombs)", DefaultValueFactory = _ => 40_000_000 };
        var urlFetch = new Option<bool>("--allow-url-fetch") { Description = "Let queries name an image by URL for the server to download (off: server-side request forgery)" };
        var noWatch = new Option<bool>("--no-watch") { Description = "Do not reload an index file when it is rebuilt" };
        var cmd = new Command("serve", "Serve a search page and a JSON API over indexes: text and image queries, more like this, zero-shot")
            { index, model, config, vocab, captions, host, port, maxUpload, maxPixels, urlFetch, noWatch };
        cmd.SetAction(r =>
        {
            if (r.GetValue(maxUpload) < 1) throw new CliException("--max-upload-mb must be at least 1");
            if (r.GetValue(maxPixels) < 1) throw new CliException("--max-image-pixels must be positive");
            var options = new ServeOptions
            {
                Indexes = r.GetValue(index) ?? [],
                ModelPath = r.GetValue(model),
                ConfigPath = r.GetValue(config),
                VocabPath = r.GetValue(vocab),
                CaptionFiles = r.GetValue(captions) ?? [],
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                MaxUploadBytes = (long)r.GetValue(maxUpload) << 20,
                MaxImagePixels = r.GetValue(maxPixels),
                AllowUrlFetch = r.GetValue(urlFetch),
                WatchIndexes = !r.GetValue(noWatch),
                Log = line => Console.Error.WriteLine(line),
            };
            foreach (var c in options.CaptionFiles)
                if (!File.Exists(c)) throw new CliException($"--captions: file not found: {c}");
            using var stop = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
            Console.CancelKeyPress += onCancel;
            using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            try
            {
                ClipServer server;
                try { server = ClipServer.StartAsync(options, stop.Token).GetAwaiter().GetResult(); }
                catch (ServeException e) { throw new CliException(e.Message); }
                try
                {
                    Console.WriteLine($"Serving {string.Join(", ", server.IndexNames)} on {server.Address}  (Ctrl+C stops)");
                    if (options.Host is "0.0.0.0" or "::") Console.WriteLine("Listening on every interface: anyone who can reach this machine can search the indexed images.");
                    server.RunUntilCancelledAsync(stop.Token).GetAwaiter().GetResult();
                }
                finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            }
            finally { Console.CancelKeyPress -= onCancel; }
            return 0;
        });
        return cmd;
    }
}

"""Examples for every command's --help, as podman's man pages have them: EXAMPLES, keyed by the
command's words; a command under a group that is another command's twin (`container ls` and
`ps`) shows its twin's examples spelled its own way (TWINS).

cli/main.py attaches them (attach(), as the parser's epilog) only when help is asked for or
the whole command line is built (docs/reference.md), so `rongqi run` never imports this.
tests/unit/cli/test_command_words.py checks that every registered command has some.
"""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, list[str]] = {
    "": ["rongqi run --rm busybox echo hello", "rongqi --root /srv/rongqi ps -a",
         "rongqi --runtime /usr/bin/runc run --rm busybox true", "rongqi run --help"],
    # -- images ---------------------------------------------------------------------------
    "pull": ["rongqi pull busybox", "rongqi pull docker.io/library/alpine:3.19",
             "rongqi pull --tls-verify=false localhost:5000/app:1.0",
             "rongqi pull --platform linux/arm64 -q alpine"],
    "push": ["rongqi push localhost:5000/app:1.0",
             "rongqi push --tls-verify=false app:latest localhost:5000/app:latest",
             "rongqi push --creds user:secret registry.example.com/team/app:2"],
    "images": ["rongqi images", "rongqi images -q", "rongqi images --digests --no-trunc",
               "rongqi images --format '{{.Repository}}:{{.Tag}} {{.Size}}'",
               "rongqi images --format json"],
    "rmi": ["rongqi rmi busybox", "rongqi rmi -f 3f57d9401f8d",
            "rongqi rmi localhost/app:1.0 localhost/app:2.0"],
    "tag": ["rongqi tag busybox localhost/mybox:1.0",
            "rongqi tag 3f57d9401f8d localhost:5000/app:latest localhost:5000/app:1.0"],
    "untag": ["rongqi untag busybox localhost/mybox:1.0",
              "rongqi untag 3f57d9401f8d  # every name: the image stays, unnamed"],
    "image exists": ["rongqi image exists busybox && echo present",
                     "rongqi image exists localhost/app:1.0 || rongqi build -t app:1.0 ."],
    "history": ["rongqi history busybox", "rongqi history --no-trunc localhost/app:1.0"],
    "load": ["rongqi load -i busybox.tar", "rongqi load < app-oci.tar",
             "rongqi load -q -i images.tar"],
    "save": ["rongqi save -o busybox.tar busybox",
             "rongqi save --format oci-archive -o app.tar localhost/app:1.0",
             "rongqi save busybox alpine > images.tar"],
    "import": ["rongqi import rootfs.tar localhost/imported:1.0",
               "rongqi import -c 'CMD [\"/bin/sh\"]' -c 'ENV LANG=C.UTF-8' rootfs.tar mybase",
               "cat rootfs.tar | rongqi import - localhost/piped"],
    "image": ["rongqi image ls", "rongqi image inspect busybox", "rongqi image prune -a -f"],
    "image inspect": ["rongqi image inspect busybox",
                      "rongqi image inspect -f '{{.Config.Cmd}}' busybox",
                      "rongqi image inspect -f '{{.Id}}' localhost/app:1.0"],
    "image prune": ["rongqi image prune", "rongqi image prune -a -f"],
    "image mount": ["rongqi image mount busybox",
                    "rongqi image mount busybox inspect-1    # a snapshot id of your choice"],
    "image unmount": ["rongqi image unmount inspect-1",
                      "rongqi image umount rongqi-1a2b3c4d5e6f"],
    "image diff": ["rongqi image diff localhost/app:1.0",
                   "rongqi image diff --format json localhost/app:1.0"],
    "build": ["rongqi build -t localhost/app:1.0 .",
              "rongqi build -f Containerfile.dev -t app:dev --build-arg VERSION=2 .",
              "rongqi build --target builder --no-cache -t app:builder .",
              "rongqi build -q --network none -t app ."],
    "login": ["rongqi login -u alice registry.example.com",
              "echo \"$TOKEN\" | rongqi login -u alice --password-stdin registry.example.com",
              "rongqi login --tls-verify=false -u test -p test localhost:5000"],
    "logout": ["rongqi logout registry.example.com",
               "rongqi logout --authfile ./auth.json localhost:5000"],
    # -- system ---------------------------------------------------------------------------
    "system": ["rongqi system df", "rongqi system info", "rongqi system prune -f"],
    "system df": ["rongqi system df"],
    "system prune": ["rongqi system prune", "rongqi system prune -a -f --volumes",
                     "rongqi system prune -f --filter label=env=test"],
    "info": ["rongqi info", "rongqi info -f '{{.Host.Kernel}}'", "rongqi info --format json"],
    "version": ["rongqi version", "rongqi version -f '{{.Client.Version}}'"],
    "events": ["rongqi events", "rongqi events --since 10m --stream=false",
               "rongqi events --filter type=container --filter event=died",
               "rongqi events --format '{{.Time}} {{.Status}} {{.Name}}' --stream=false"],
    "serve": ["rongqi serve    # docker's API on unix:///run/rongqi/docker.sock; ends 5 s idle",
              "rongqi serve --timeout 0 unix:///tmp/rongqi.sock    # then, in another shell: "
              "DOCKER_HOST=unix:///tmp/rongqi.sock docker ps",
              "rongqi serve -H tcp://127.0.0.1:2375 -t 0"],
    "completion": ["rongqi completion bash > /etc/bash_completion.d/rongqi",
                   "source <(rongqi completion bash)",
                   "rongqi completion zsh > \"${fpath[1]}/_rongqi\""],
    # -- containers -----------------------------------------------------------------------
    "container": ["rongqi container ls -a", "rongqi container run --rm busybox true",
                  "rongqi container prune -f"],
    "run": ["rongqi run --rm busybox echo hello",
            "rongqi run -it --rm busybox sh",
            "rongqi run -d --name web -v data:/data -p 8080:80 IMAGE",
            "rongqi run --rm --network none --read-only --memory 64m --pids-limit 100 busybox id",
            "rongqi run --rm -e MODE=test -w /tmp -u 1000:1000 busybox sh -c 'echo $MODE; pwd'",
            "rongqi run -d --restart on-failure:3 --health-cmd 'wget -q -O- localhost' IMAGE"],
    "create": ["rongqi create --name box busybox sleep 300",
               "rongqi create -it --name shell busybox sh    # then: rongqi start -ai shell",
               "rongqi create --rm --cidfile /tmp/box.cid busybox true"],
    "start": ["rongqi start box", "rongqi start -ai shell", "rongqi start --all",
              "rongqi start --filter status=exited"],
    "stop": ["rongqi stop web", "rongqi stop -t 2 web db", "rongqi stop --all",
             "rongqi stop --latest"],
    "restart": ["rongqi restart web", "rongqi restart -t 0 --running", "rongqi restart --all"],
    "kill": ["rongqi kill web", "rongqi kill -s HUP web", "rongqi kill --signal SIGUSR1 -a"],
    "rm": ["rongqi rm box", "rongqi rm -f web", "rongqi rm -f -v -t 0 web",
           "rongqi rm --all", "rongqi rm --filter status=exited"],
    "ps": ["rongqi ps", "rongqi ps -a", "rongqi ps -aq --filter status=exited",
           "rongqi ps --filter name=web --format '{{.ID}} {{.Names}} {{.Status}}'",
           "rongqi ps -a --no-trunc --format json", "rongqi ps -l -s"],
    "inspect": ["rongqi inspect web", "rongqi inspect -f '{{.State.Status}}' web",
                "rongqi inspect --type image busybox", "rongqi inspect -f '{{.Id}}' --latest"],
    "wait": ["rongqi wait web", "rongqi wait --condition running web",
             "rongqi wait --latest"],
    "rename": ["rongqi rename web web-old"],
    "update": ["rongqi update --cpus 0.5 --memory 256m web",
               "rongqi update --pids-limit 200 --cpu-shares 512 web",
               "rongqi update --restart on-failure:3 web"],
    "pause": ["rongqi pause web", "rongqi pause --all"],
    "unpause": ["rongqi unpause web", "rongqi unpause --all"],
    "container inspect": ["rongqi container inspect web",
                          "rongqi container inspect -f '{{.State.Pid}}' web",
                          "rongqi container inspect -s --latest"],
    "container exists": ["rongqi container exists web && echo yes",
                         "rongqi container exists 3f57d9401f8d; echo $?    # 1: no such container"],
    "container prune": ["rongqi container prune", "rongqi container prune -f",
                        "rongqi container prune -f --filter label=env=test"],
    "attach": ["rongqi attach web", "rongqi attach --no-stdin web",
               "rongqi attach --detach-keys ctrl-x shell"],
    "exec": ["rongqi exec web ls /", "rongqi exec -it web sh",
             "rongqi exec -e DEBUG=1 -w /tmp -u nobody web env",
             "rongqi exec -d web touch /tmp/marker", "rongqi exec --latest cat /etc/hostname"],
    "logs": ["rongqi logs web", "rongqi logs -f web", "rongqi logs --tail 20 -t web",
             "rongqi logs --since 10m --until 1m web", "rongqi logs -f -n web db"],
    "healthcheck": ["rongqi healthcheck run web"],
    "healthcheck run": ["rongqi healthcheck run web",
                        "rongqi healthcheck run web && echo healthy"],
    "cp": ["rongqi cp web:/etc/hostname .", "rongqi cp ./config.yml web:/etc/app/",
           "rongqi cp -a web:/var/log/app ./logs",
           "rongqi cp web:/srv - > srv.tar", "tar -c site | rongqi cp - web:/var/www"],
    "diff": ["rongqi diff web", "rongqi diff --format json web", "rongqi diff --latest"],
    "commit": ["rongqi commit web localhost/web:snapshot",
               "rongqi commit -c 'CMD [\"/bin/sh\"]' -m 'added tools' -a alice box tools:1",
               "rongqi commit -p=false --squash web web:flat"],
    "export": ["rongqi export -o web.tar web", "rongqi export web | tar -t | head"],
    "stats": ["rongqi stats", "rongqi stats --no-stream web",
              "rongqi stats -a --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}'",
              "rongqi stats --no-stream --format json"],
    "top": ["rongqi top web", "rongqi top web pid user args", "rongqi top web -ef"],
    "port": ["rongqi port web", "rongqi port web 80/tcp", "rongqi port --all"],
    # -- volumes --------------------------------------------------------------------------
    "volume": ["rongqi volume create data", "rongqi volume ls", "rongqi volume prune -f"],
    "volume create": ["rongqi volume create data",
                      "rongqi volume create --label env=test cache",
                      "rongqi volume create -o type=tmpfs -o device=tmpfs -o o=size=64m scratch"],
    "volume ls": ["rongqi volume ls", "rongqi volume ls -q --filter dangling=true",
                  "rongqi volume ls --format '{{.Name}} {{.Driver}}'"],
    "volume inspect": ["rongqi volume inspect data",
                       "rongqi volume inspect -f '{{.Mountpoint}}' data",
                       "rongqi volume inspect --all"],
    "volume rm": ["rongqi volume rm data", "rongqi volume rm -f data",
                  "rongqi volume rm --all"],
    "volume prune": ["rongqi volume prune", "rongqi volume prune -f --filter label=env=test"],
    "volume exists": ["rongqi volume exists data && echo yes"],
    # -- networks -------------------------------------------------------------------------
    "network": ["rongqi network create backend", "rongqi network ls",
                "rongqi run --rm --network backend busybox ip addr"],
    "network create": ["rongqi network create backend",
                       "rongqi network create --subnet 10.90.0.0/24 --gateway 10.90.0.1 lab",
                       "rongqi network create --internal --disable-dns isolated"],
    "network ls": ["rongqi network ls", "rongqi network ls -q",
                   "rongqi network ls --format '{{.Name}} {{.Driver}}'"],
    "network inspect": ["rongqi network inspect backend",
                        "rongqi network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' backend"],
    "network rm": ["rongqi network rm backend", "rongqi network rm -f -t 0 backend"],
    "network prune": ["rongqi network prune", "rongqi network prune -f"],
    "network exists": ["rongqi network exists backend && echo yes"],
    "network connect": ["rongqi network connect backend web",
                        "rongqi network connect --alias api --ip 10.90.0.10 lab web"],
    "network reload": ["rongqi network reload web", "rongqi network reload --all"],
    "network disconnect": ["rongqi network disconnect backend web",
                           "rongqi network disconnect -f backend web"],
}

# A command under a group that is another command under another name: its examples are its
# twin's, spelled its own way.
TWINS: dict[str, str] = {
    "image ls": "images", "image pull": "pull", "image push": "push", "image rm": "rmi",
    "image history": "history", "image load": "load", "image save": "save",
    "image import": "import", "image tag": "tag", "image build": "build",
    "image untag": "untag",
    "system info": "info", "system service": "serve",
    "container ls": "ps", **{f"container {c}": c for c in (
        "create", "start", "stop", "restart", "kill", "rm", "wait", "rename",
        "pause", "unpause", "run", "attach", "exec", "logs", "cp", "diff", "commit", "export",
        "stats", "top", "port", "update")},
}


def examples(words: tuple[str, ...]) -> list[str]:
    """The example lines of the command `rongqi WORDS...` ([] when it has none)."""
    key = " ".join(words)
    if key in EXAMPLES:
        return EXAMPLES[key]
    twin = TWINS.get(key)
    if twin is None:
        return []
    return [line.replace(f"rongqi {twin}", f"rongqi {key}", 1) for line in EXAMPLES[twin]]


def epilog(words: tuple[str, ...]) -> str:
    lines = examples(words)
    return "Examples:\n" + "".join(f"  {line}\n" for line in lines) if lines else ""


def attach(p: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> None:
    """Give p and every command under it its examples (their --help's last part)."""
    text = epilog(words)
    if text:
        p.epilog = text
        # The epilog's lines as written (argparse's default would re-flow them into one).
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    for act in p._actions:
        if isinstance(act, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sp in act.choices.items():
                if id(sp) not in seen:  # an alias names the same parser again
                    seen.add(id(sp))
                    attach(sp, (*words, name))
